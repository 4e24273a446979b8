"""Run a service's app under uvicorn with the platform's logging (each service's `__main__` calls this)."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from servicekit import heap
from servicekit.logs import configure_logging
from servicekit.priority import yield_cpu
from servicekit.settings import ServiceSettings


def run_service(app: FastAPI, settings: ServiceSettings) -> None:
    configure_logging(settings.service_name, settings.log_level)
    yield_cpu(settings.cpu_nice)  # before uvicorn: the threads it and the app start inherit it
    # The heap may be frozen after the start and a model swap, and young collections are rarer.
    heap.own_process(settings.gc_young_threshold)
    heap.watch_pauses(settings.service_name)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,  # keep our JSON handler
        access_log=False,  # request metrics are on /metrics; access logs would repeat them per request
        lifespan="on",
        # The standard event loop, not uvloop: aiokafka expects writing to a broken connection to
        # raise OSError (or nothing), and uvloop raises RuntimeError instead, which kills a
        # consumer's group coordinator for good after a broker restart (the consumer then never
        # fetches again; found by the fault-injection suite).
        loop="asyncio",
        timeout_graceful_shutdown=10,
    )
