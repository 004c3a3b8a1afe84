"""Build the FastAPI application around one archive.

The archive is put on ``app.state`` and handed to routes through a dependency,
so routers stay thin and tests can build an app around any archive.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from admin import aes as admin_aes
from admin import consultations as admin_consultations
from admin import corrections as admin_corrections
from admin import deletions as admin_deletions
from admin import exports as admin_exports
from admin import hl7 as admin_hl7
from admin import holds as admin_holds
from admin import jobs as admin_jobs
from admin import orders as admin_orders
from admin import patients as admin_patients
from admin import reading as admin_reading
from admin import rejections as admin_rejections
from admin import reports as admin_reports
from admin import retention as admin_retention
from admin import routing as admin_routing
from admin import stats as admin_stats
from admin import system as admin_system
from admin import users as admin_users
from app.http import pages
from app.http.compression import JsonGzipMiddleware
from app.http.cors import install_cors
from app.http.errors import install_error_mapping, unavailable_response
from app.http.head import HeadAsGetMiddleware
from app.http.metrics import install_metrics
from app.http.security import install_security_headers
from dicomweb import delete, qido, rendered, stow, wado, wado_uri
from dicomweb.urls import base_url
from ehr import launch as ehr_launch
from ehr import routes as fhir_routes
from ehr import smart as fhir_smart
from pacs import __version__
from pacs.archive import Archive
from pacs.audit import routes as audit_routes
from pacs.auth import routes as auth_routes
from viewer import ohif_routes
from viewer import routes as viewer_routes
from viewer import studies as viewer_studies


def get_archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


ArchiveDep = Annotated[Archive, Depends(get_archive)]


def create_app(archive: Archive) -> FastAPI:
    app = FastAPI(title="PACS", version=__version__, docs_url=None, redoc_url=None)
    app.state.archive = archive
    install_error_mapping(app)
    pages.install_pages(app)
    install_security_headers(app)
    install_cors(app, archive.settings)
    # Outermost last: HEAD runs as GET and drops the body the gzip layer produced, so its
    # headers (Content-Encoding, Content-Length) are exactly those of the GET.
    app.add_middleware(JsonGzipMiddleware)
    app.add_middleware(HeadAsGetMiddleware)
    install_metrics(app)  # outermost: times the whole request, HEAD and gzip included
    # Starlette tries routes in order: the viewer's many requests per second (frames,
    # rendered, metadata) are matched first, before the ~200 administration routes.
    app.include_router(rendered.router, prefix="/dicom-web")
    app.include_router(qido.router, prefix="/dicom-web")
    app.include_router(wado.router, prefix="/dicom-web")
    app.include_router(stow.router, prefix="/dicom-web")
    app.include_router(delete.router, prefix="/dicom-web")
    app.include_router(wado_uri.router)
    app.include_router(auth_routes.router)
    app.include_router(audit_routes.router)
    app.include_router(admin_jobs.router)
    app.include_router(admin_holds.router)
    app.include_router(admin_corrections.router)
    app.include_router(admin_deletions.router)
    app.include_router(admin_aes.router)
    app.include_router(admin_hl7.router)
    app.include_router(admin_orders.router)
    app.include_router(admin_users.router)
    app.include_router(admin_stats.router)
    app.include_router(admin_retention.router)
    app.include_router(admin_system.router)
    app.include_router(admin_routing.router)
    app.include_router(admin_consultations.router)
    app.include_router(admin_reports.router)
    app.include_router(admin_reading.router)
    app.include_router(admin_patients.router)
    app.include_router(admin_exports.router)
    app.include_router(admin_rejections.router)
    app.include_router(ohif_routes.router)
    app.include_router(fhir_routes.create_router(base_url))
    app.include_router(fhir_smart.create_router(base_url))
    app.include_router(ehr_launch.create_router(base_url))
    app.include_router(viewer_studies.router)
    app.include_router(viewer_routes.router)

    @app.get("/health", include_in_schema=False)
    def health(archive: ArchiveDep) -> JSONResponse:
        """Liveness and readiness for load balancers and Docker: no patient data."""
        checks = archive.health()
        if all(value == "ok" for value in checks.values()):
            return JSONResponse({"status": "ok", **checks})
        return unavailable_response({"status": "degraded", **checks})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def status(request: Request, archive: ArchiveDep) -> HTMLResponse:
        """A small page for the IT person who just ran `make run`: counts only, no names."""
        return pages.status_page(request, archive)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return pages.favicon()

    return app
