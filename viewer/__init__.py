"""The web viewer: built assets and the routes that serve them."""
