"""The gateway's own LLM routes: /llm/generate and /models (their legacy paths: api/aliases.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from llm_gateway.api.deps import LimitedPrincipal, services
from llm_gateway.api.responses import JSONResponse
from llm_gateway.api.schemas import GenerateRequest, GenerateResponse
from llm_gateway.auth.principal import Principal
from llm_gateway.chat_request import ChatRequest
from llm_gateway.llm.service import Completion, LLMService
from llm_gateway.observability.context import request_id_var

router = APIRouter(tags=["llm"])


def llm_service(request: Request) -> LLMService:
    """The app's LLMService. The hot routes call this instead of declaring the LLM dependency:
    every dependency costs a FastAPI solving pass per request, for what is an attribute read."""
    return services(request).llm


# `async def` on purpose: FastAPI runs plain `def` dependencies in a worker thread.
async def get_llm(request: Request) -> LLMService:
    return llm_service(request)


LLM = Annotated[LLMService, Depends(get_llm)]


def default_model(request: Request) -> str:
    return services(request).settings.default_model


def cache_headers(response: Response, completion: Completion) -> None:
    response.headers["X-Cache"] = (
        f"HIT; tier={completion.cache_tier}" if completion.cached else "MISS"
    )
    response.headers["X-Model-Used"] = completion.model_used


async def _generate(
    body: GenerateRequest,
    request: Request,
    response: Response,
    principal: Principal,
    llm: LLMService,
) -> GenerateResponse:
    chat = ChatRequest(
        endpoint="generate",
        model=body.model or default_model(request),
        messages=body.messages(),
        params=body.params(),
    )
    completion = await llm.complete(chat, principal)
    cache_headers(response, completion)
    usage = completion.usage
    return GenerateResponse(
        response=completion.text,
        model=completion.model_used,
        model_requested=chat.model,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        total_tokens=usage.total_tokens if usage else None,
        cost=completion.cost,
        cached=completion.cached,
        cache_tier=completion.cache_tier,
        latency_ms=completion.latency_ms,
        request_id=request_id_var.get(),
    )


@router.post("/llm/generate", response_model=GenerateResponse, summary="Answer a prompt")
async def generate(
    body: GenerateRequest,
    request: Request,
    response: Response,
    principal: LimitedPrincipal,
) -> GenerateResponse:
    return await _generate(body, request, response, principal, llm_service(request))


@router.get("/models", summary="Models LiteLLM serves")
async def models(principal: LimitedPrincipal, llm: LLM) -> JSONResponse:
    listed = await llm.list_models()
    return JSONResponse({"models": [m.get("id") for m in listed], "data": listed})
