"""OpenAI-compatible routes, so the OpenAI SDK works with `base_url` pointed here."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.responses import Response as StarletteResponse

from llm_gateway.api.deps import LimitedPrincipal
from llm_gateway.api.llm import LLM, cache_headers, default_model, llm_service
from llm_gateway.api.responses import JSONResponse
from llm_gateway.api.schemas import ChatCompletionRequest
from llm_gateway.api.sse import EventStreamResponse
from llm_gateway.chat_request import ChatRequest
from llm_gateway.observability.context import request_id_var

router = APIRouter(prefix="/v1", tags=["openai"])


class _AsgiResponse(StarletteResponse):
    """Lets a route return a pure ASGI callable where FastAPI expects a Response."""

    def __init__(self, app: Any) -> None:
        # Deliberately not Response.__init__: there is no body to render.
        self._app = app
        self.background = None
        self.status_code = 200
        self.raw_headers = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)


@router.post("/chat/completions", summary="OpenAI chat completions (stream: true for SSE)")
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    response: Response,
    principal: LimitedPrincipal,
) -> StarletteResponse:
    llm = llm_service(request)
    chat = ChatRequest(
        endpoint="chat.completions",
        model=body.model or default_model(request),
        messages=body.message_dicts(),
        params=body.params(),
        stream=body.stream,
    )
    if not chat.stream:
        completion = await llm.complete(chat, principal)
        answer = JSONResponse(completion.body)
        cache_headers(answer, completion)
        answer.headers.update(response.headers)
        return answer

    opened = llm.stream(chat, principal)
    call = await opened.__aenter__()  # raises HTTP-mappable errors before any byte is sent
    headers = dict(response.headers)
    headers["X-Model-Used"] = call.model_used
    return _AsgiResponse(
        EventStreamResponse(opened, aiter(call), headers=headers, request_id=request_id_var.get())
    )


@router.get("/models", summary="OpenAI model list")
async def list_models(principal: LimitedPrincipal, llm: LLM) -> JSONResponse:
    return JSONResponse({"object": "list", "data": await llm.list_models()})
