"""Who is asking: accounts, tokens, share grants, and the policy that decides what they may do."""
