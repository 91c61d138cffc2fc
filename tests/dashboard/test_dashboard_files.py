"""The dashboard's files: served by mezzo itself, self-contained (no CDN), nothing else exposed."""

from __future__ import annotations

import re

import httpx

from core_support import ServerThread
from mezzo.server.dashboard import STATIC


def test_the_page_and_its_modules_are_served_and_load_nothing_from_elsewhere(
    server: ServerThread,
) -> None:
    with httpx.Client(base_url=server.url, trust_env=False) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        linked = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert linked and all(link.startswith("/ui/") for link in linked)
        modules = {path.name for path in STATIC.glob("*.js")}
        for name in sorted(modules | {"style.css"}):
            served = client.get(f"/ui/{name}")
            assert served.status_code == 200, name
            assert not re.search(r"https?://", served.text), f"{name} loads from elsewhere"
            for imported in re.findall(r'from "\./([^"]+)"', served.text):
                assert imported in modules, f"{name} imports a missing {imported}"
        assert client.get("/ui/nope.js").status_code == 404
        for escape in ("/ui/../dashboard.py", "/ui/%2e%2e/dashboard.py", "/ui/..%2fapp.py"):
            response = client.get(escape)
            assert response.status_code == 404, escape
            assert "APIRouter" not in response.text
