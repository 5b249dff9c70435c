"""The web page's routes: HTML pages for people, a small JSON API for the page's own script."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from service.client import UserError
from service.costs import spend_by_group
from service.web import jobs, submission, uploads
from service.web.backend import Backend, explain
from service.web.catalog import Catalog
from service.web.security import Guard, Secrets

HERE = Path(__file__).parent


class Web:
    """Everything the routes share: the way to S3, the catalog of analyses, the page's secrets."""

    def __init__(self, backend: Backend, catalog: Catalog, keys: Secrets) -> None:
        self.backend = backend
        self.catalog = catalog
        self.keys = keys
        self.templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                                     autoescape=select_autoescape(["html"]))
        self.templates.filters["state_class"] = jobs.state_class
        self.templates.filters["url"] = lambda part: quote(str(part), safe="")

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = self.templates.get_template(name).render(csrf=self.keys.csrf, where=self.backend.where, **context)
        return HTMLResponse(body, status)


def page(handler: Callable[..., Response]) -> Callable[..., Any]:
    """A page handler run in a worker thread; any failure becomes the error page with one sentence."""
    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        web: Web = request.app.state.web
        try:
            return await run_in_threadpool(handler, web, request, **request.path_params)
        except Exception as error:  # every failure is shown as a sentence, never a traceback
            status, message = explain(error, web.backend.where)
            return web.render("error.html", status, message=message)
    return run


def api(handler: Callable[..., Any]) -> Callable[..., Any]:
    """A JSON handler; failures become {"error": sentence} (and "field" for a parameter problem)."""
    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        web: Web = request.app.state.web
        try:
            body = await request.json() if request.method == "POST" else {}
            if not isinstance(body, dict):
                return JSONResponse({"error": "The request was not a JSON object."}, 400)
            result = await run_in_threadpool(handler, web, request, body, **request.path_params)
            return result if isinstance(result, Response) else JSONResponse(result)
        except json.JSONDecodeError:
            return JSONResponse({"error": "The request was not valid JSON."}, 400)
        except (TypeError, ValueError) as error:  # a number that is not one, from a hand-made request
            return JSONResponse({"error": f"The request was not understood ({error})."}, 400)
        except Exception as error:
            status, message = explain(error, web.backend.where)
            field = "parameters" if isinstance(error, submission.ParameterProblem) else None
            return JSONResponse({"error": message, "field": field}, status)
    return run


# --- pages ------------------------------------------------------------------------------------
@page
def analyses_page(web: Web, request: Request) -> Response:
    client = web.backend.client()
    return web.render("analyses.html", analyses=web.catalog.analyses(client))


@page
def group_page(web: Web, request: Request, analysis: str, group: str) -> Response:
    client = web.backend.client()
    found = web.catalog.group(client, analysis, group)
    rows = []
    for record in client.jobs(analysis, group):
        rows.append(jobs.job_summary(client, jobs.job_ref(analysis, group, record.job_id), record))
    return web.render("group.html", analysis=found, group=group, jobs=rows)


@page
def costs_page(web: Web, request: Request, analysis: str) -> Response:
    client = web.backend.client()
    found = web.catalog.analysis(client, analysis)
    spend = {group: spend_by_group(client.s3, analysis, group).get(group) for group in found.groups}
    return web.render("costs.html", analysis=found, spend=spend)


@page
def submit_page(web: Web, request: Request, analysis: str, group: str) -> Response:
    found = web.catalog.group(web.backend.client(), analysis, group)
    return web.render("submit.html", analysis=found, group=group, part_size=uploads.PART_SIZE)


@page
def job_page(web: Web, request: Request, analysis: str, group: str, job_id: str) -> Response:
    client = web.backend.client()
    found = web.catalog.group(client, analysis, group)
    ref = jobs.job_ref(analysis, group, job_id)
    return web.render("job.html", analysis=found, group=group, job_id=ref.job_id)


@page
def dataset_log(web: Web, request: Request, analysis: str, group: str, job_id: str, label: str) -> Response:
    client = web.backend.client()
    web.catalog.group(client, analysis, group)
    return PlainTextResponse(jobs.dataset_log(client, jobs.job_ref(analysis, group, job_id), label))


@page
def result_file(web: Web, request: Request, analysis: str, group: str, job_id: str, path: str) -> Response:
    client = web.backend.client()
    web.catalog.group(client, analysis, group)
    ref = jobs.job_ref(analysis, group, job_id)
    key, size = jobs.result_key(client, ref, path)
    kind, inline = jobs.media_type(path)
    disposition = "inline" if inline and "download" not in request.query_params else "attachment"
    name = quote(path.rsplit("/", 1)[-1])
    return StreamingResponse(jobs.stream_object(client, ref.bucket, key), media_type=kind, headers={
        "content-length": str(size), "content-disposition": f"{disposition}; filename*=UTF-8''{name}"})


@page
def results_zip(web: Web, request: Request, analysis: str, group: str, job_id: str) -> Response:
    client = web.backend.client()
    web.catalog.group(client, analysis, group)
    ref = jobs.job_ref(analysis, group, job_id)
    if not client.result_files(ref):
        raise UserError(f"Job {job_id} has no results yet.")
    return StreamingResponse(jobs.zip_results(client, ref), media_type="application/zip", headers={
        "content-disposition": f"attachment; filename*=UTF-8''{quote(job_id)}-results.zip"})


# --- the page's API ---------------------------------------------------------------------------
@api
def check(web: Web, request: Request, body: dict[str, Any], analysis: str, group: str) -> dict[str, Any]:
    found = web.catalog.group(web.backend.client(), analysis, group)
    parameters = submission.check_parameters(found, str(body.get("name", "")), str(body.get("text", "")))
    chosen = submission.choose_instance_type(found, body.get("instance_type"))
    for name in body.get("datasets", ()):
        uploads.file_key(group, "inputs", str(name))
    cost = submission.estimate(found, chosen, int(body.get("count", 1)), parameters)
    return {"ok": True, "estimate": cost.__dict__ if cost else None}


@api
def begin_upload(web: Web, request: Request, body: dict[str, Any], analysis: str, group: str) -> dict[str, Any]:
    client = web.backend.client()
    web.catalog.group(client, analysis, group)
    plan = uploads.plan(group, "inputs", str(body.get("name", "")), int(body.get("size", -1)))
    upload_id, done = uploads.begin(client.s3, analysis, plan, body.get("upload_id"))
    return {"upload_id": upload_id, "key": plan.key, "part_size": plan.part_size, "parts": plan.parts, "done": done}


async def put_part(request: Request) -> Response:
    """One part of a file, read with a size limit and passed straight on to S3."""
    web: Web = request.app.state.web
    params = request.path_params
    try:
        query = request.query_params
        plan = uploads.plan(params["group"], "inputs", query.get("name", ""), int(query.get("size", "-1")))
        received = bytearray()
        async for chunk in request.stream():
            received += chunk
            if len(received) > plan.part_size:
                raise UserError("A part was larger than the upload's part size.")
        client = await run_in_threadpool(web.backend.client)
        await run_in_threadpool(web.catalog.group, client, params["analysis"], params["group"])
        etag = await run_in_threadpool(uploads.put_part, client.s3, params["analysis"], plan, query.get("upload_id", ""),
                                       int(params["number"]), bytes(received))
        return JSONResponse({"etag": etag})
    except Exception as error:
        status, message = explain(error, web.backend.where)
        return JSONResponse({"error": message}, status)


@api
def complete_upload(web: Web, request: Request, body: dict[str, Any], analysis: str, group: str) -> dict[str, Any]:
    client = web.backend.client()
    web.catalog.group(client, analysis, group)
    plan = uploads.plan(group, "inputs", str(body.get("name", "")), int(body.get("size", -1)))
    uploads.finish(web.backend.completing_s3(), analysis, plan, str(body.get("upload_id", "")))
    return {"key": plan.key}


@api
def submit(web: Web, request: Request, body: dict[str, Any], analysis: str, group: str) -> dict[str, Any]:
    client = web.backend.client()
    found = web.catalog.group(client, analysis, group)
    ref = submission.submit(client, found, group, [str(n) for n in body.get("datasets", ())],
                            str(body.get("config_name", "")), str(body.get("config_text", "")),
                            body.get("instance_type"))
    return {"job_id": ref.job_id, "url": f"/a/{quote(analysis)}/{quote(group)}/jobs/{quote(ref.job_id)}"}


@api
def job_status(web: Web, request: Request, body: dict[str, Any], analysis: str, group: str,
               job_id: str) -> dict[str, Any]:
    client = web.backend.client()
    web.catalog.group(client, analysis, group)
    ref = jobs.job_ref(analysis, group, job_id)
    return jobs.job_payload(client, ref, f"/a/{quote(analysis)}/{quote(group)}/jobs/{quote(ref.job_id)}")


@api
def cancel(web: Web, request: Request, body: dict[str, Any], analysis: str, group: str, job_id: str) -> dict[str, Any]:
    client = web.backend.client()
    web.catalog.group(client, analysis, group)
    ref = jobs.job_ref(analysis, group, job_id)
    if jobs.record_of(client, ref) is None:
        raise UserError(f"Job {job_id} has not started yet; cancel it once it appears.")
    return {"stopped": client.cancel(ref)}


def create_app(backend: Backend, catalog: Catalog, keys: Secrets) -> Guard:
    """The page as an ASGI app, every route behind the token and CSRF guard."""
    job = "/a/{analysis}/{group}/jobs/{job_id}"
    api_group = "/api/a/{analysis}/{group}"
    routes = [
        Route("/", analyses_page),
        Route("/costs/{analysis}", costs_page),
        Route("/a/{analysis}/{group}", group_page),
        Route("/a/{analysis}/{group}/submit", submit_page),
        Route(job, job_page),
        Route(job + "/logs/{label}", dataset_log),
        Route(job + "/results.zip", results_zip),
        Route(job + "/results/{path:path}", result_file),
        Route(api_group + "/check", check, methods=["POST"]),
        Route(api_group + "/uploads", begin_upload, methods=["POST"]),
        Route(api_group + "/uploads/parts/{number:int}", put_part, methods=["PUT"]),
        Route(api_group + "/uploads/complete", complete_upload, methods=["POST"]),
        Route(api_group + "/submit", submit, methods=["POST"]),
        Route("/api" + job, job_status),
        Route("/api" + job + "/cancel", cancel, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.web = Web(backend, catalog, keys)
    return Guard(app, keys)
