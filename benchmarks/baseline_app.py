"""The ingest benchmark's baseline: a bare Litestar app with one POST route that reads the body.

Served with exactly the uvicorn settings `gateway serve` uses (gateway/cli.py), so the
ratio gateway/baseline measures what the gateway adds on top of framework and server:

    .venv/bin/python benchmarks/baseline_app.py --port 8100
"""

from __future__ import annotations

import argparse

from litestar import Litestar, Request, Response, post

_OK = b'{"status":"accepted"}'


@post("/webhooks/{source:str}", status_code=200)
async def receive(request: Request[object, object, object], source: str) -> Response[bytes]:
    """Read the whole body and answer 200."""
    await request.body()
    return Response(_OK, status_code=200, media_type="application/json")


app = Litestar(route_handlers=[receive], debug=False, openapi_config=None)


def main() -> None:
    """Serve the app on 127.0.0.1 with the gateway's uvicorn settings."""
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        workers=1,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        proxy_headers=False,
        log_level="warning",
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()
