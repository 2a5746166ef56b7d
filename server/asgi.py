"""The ASGI entry point: ``uvicorn --factory server.asgi:build`` (settings from the environment)."""

from fastapi import FastAPI

from server.app import create_app
from server.settings import get_settings


def build() -> FastAPI:
    return create_app(get_settings())
