"""Run the gateway and the worker in the foreground of this process."""

from __future__ import annotations

import logging

from mailyard.settings import Settings

log = logging.getLogger(__name__)


def run_gateway(settings: Settings) -> None:
    import uvicorn

    from connectors.gateway import RawProducer, create_gateway
    from connectors.smtp_submission import start_smtp_submission

    producer = RawProducer(settings.bootstrap, settings.produce_timeout_s)
    api = create_gateway(settings, producer)
    smtp = start_smtp_submission(settings, producer, api.state.tenants)
    log.info(
        "gateway listening on http://%s:%s/webhooks/{esp}",
        settings.gateway_host, settings.gateway_port,
    )
    try:
        uvicorn.run(
            api,
            host=settings.gateway_host,
            port=settings.gateway_port,
            log_level="warning",
        )
    finally:
        smtp.stop()
        producer.close()


def run_worker(settings: Settings) -> None:
    import faust
    from faust.contrib.asgi import serve_asgi

    from streams.api import create_api
    from streams.app import Worker

    worker = Worker(settings)
    serve_asgi(
        worker.app,
        create_api(worker),
        host=settings.gateway_host,
        port=settings.api_port,
        log_level="warning",
    )
    log.info("worker API on http://%s:%s/v1/counts", settings.gateway_host,
             settings.api_port)
    faust.Worker(worker.app, loglevel="INFO").execute_from_commandline()
