"""Who may do what: one table, operation x role, read by every door.

A route declares its operation (``authorize("retrieve")``); this table says
which roles may perform it. A test enumerates every registered route and
fails when one has no operation, so a new route cannot slip through. The same
table is rendered in the README.
"""

from __future__ import annotations

from fastapi import HTTPException, status

from pacs.auth.principal import Principal, Role

R = Role
POLICY: dict[str, frozenset[Role]] = {
    # patient data
    "search": frozenset({R.ADMIN, R.RADIOLOGIST, R.CLINICIAN, R.INTEGRATION, R.SHARE}),
    "retrieve": frozenset({R.ADMIN, R.RADIOLOGIST, R.CLINICIAN, R.INTEGRATION, R.SHARE}),
    "store": frozenset({R.ADMIN, R.RADIOLOGIST, R.INTEGRATION}),
    "delete": frozenset({R.ADMIN}),
    "share": frozenset({R.ADMIN, R.RADIOLOGIST, R.CLINICIAN}),
    # studies packed onto media (ZIP, DICOMDIR), optionally de-identified (/api/exports)
    "export": frozenset({R.ADMIN, R.RADIOLOGIST, R.CLINICIAN}),
    # reports: radiologists write and sign them; clinicians and the HIS read the signed result
    "report": frozenset({R.ADMIN, R.RADIOLOGIST}),
    "report-read": frozenset({R.ADMIN, R.RADIOLOGIST, R.CLINICIAN, R.INTEGRATION}),
    # the HIS mints short-lived per-study viewer links for its users (ehr.launch)
    "launch": frozenset({R.ADMIN, R.INTEGRATION}),
    # send a study to another PACS, query and retrieve from one (pacs.routing)
    "send": frozenset({R.ADMIN, R.RADIOLOGIST}),
    # administration and oversight
    "admin": frozenset({R.ADMIN}),
    "audit": frozenset({R.ADMIN, R.AUDITOR}),
    # no patient data
    "metrics": frozenset({R.ADMIN, R.INTEGRATION}),  # Prometheus scrape (loopback needs none)
    # aggregate statistics (counts per period, referring physicians' names, no patients)
    "stats": frozenset({R.ADMIN, R.AUDITOR}),
    "self": frozenset(set(Role) - {R.ANONYMOUS}),  # who am I, log out
    "public": frozenset(set(Role)),
}


# Routes reachable without credentials, and why they expose no patient data.
PUBLIC_ROUTES: dict[str, str] = {
    "/health": "liveness for load balancers: index and storage status only",
    "/": "status page: version, AE title, port and counts, no names",
    "/favicon.ico": "the site's icon: a static image",
    "/login": "checks credentials (rate-limited, audited), returns no patient data",
    "/logout": "clears the session cookie",
    "/login/oidc": "redirect to the identity provider: no patient data",
    "/login/oidc/callback": "the identity provider's answer: verified, then a session cookie",
    "/fhir/metadata": "FHIR CapabilityStatement: what the server supports, no patient data",
    "/fhir/.well-known/smart-configuration": (
        "SMART configuration: the token endpoint and the scopes, no patient data"
    ),
    "/fhir/auth/token": (
        "OAuth 2.0 client credentials: the client's secret is the credential (checked like a "
        "password: rate-limited, locked out, audited); returns a token, no patient data"
    ),
    "/s/{token}": "share link landing: the signed token (and PIN) is the credential",
    "/api/consultations/{consultation_id}/reply": (
        "a consulted facility's answer: the secret made for that one consultation is the "
        "credential (compared in constant time); it returns no patient data"
    ),
    "/ohif": "OHIF's static application code, no patient data",
    "/ohif/{path:path}": "OHIF's static application code, no patient data",
    "/ohif/app-config.js": "OHIF configuration: this server's DICOMweb URL, no patient data",
    "/viewer": "redirect to /viewer/: static code, no patient data",
    "/viewer/": "the web viewer's page: static code, no patient data (it fetches via DICOMweb)",
    "/viewer/{path:path}": "the web viewer's built JS, CSS and WASM: static code, no patient data",
}


def permits(principal: Principal, operation: str) -> bool:
    """Whether ``principal`` may perform ``operation``; unknown operations are refused."""
    return principal.role in POLICY.get(operation, frozenset())


def check_study_scope(principal: Principal, study_uid: str | None) -> None:
    """Refuse (403) a share-grant principal any study but the one it was granted."""
    if principal.study_uid is not None and study_uid != principal.study_uid:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this link opens only one study")


def render_policy_table() -> str:
    """The table as Markdown, for docs/SECURITY.md (a test keeps the two equal)."""
    roles = list(Role)
    lines = [
        "| operation | " + " | ".join(str(role) for role in roles) + " |",
        "|---|" + "---|" * len(roles),
    ]
    for operation, allowed in POLICY.items():
        cells = " | ".join("yes" if role in allowed else "-" for role in roles)
        lines.append(f"| `{operation}` | {cells} |")
    return "\n".join(lines)
