"""The API's routers, by module name.

Every module listed here exposes ``router`` (a FastAPI ``APIRouter``) and may define
``install(app)``, called at start-up once ``app.state`` holds the engine, settings and models
(for example to set ``app.state.measure_provider``). Modules that do not exist yet are skipped,
so each engineer appends their module here and ``create_app`` picks it up.
"""

from __future__ import annotations

ROUTER_MODULES: list[str] = [
    "serving.routes.health",
    "serving.routes.score",
    "serving.routes.inspections",
    "serving.routes.model",
    "serving.routes.keys",
    "serving.routes.enterprises",
    "serving.routes.warnings",
    "serving.routes.pages",
]
