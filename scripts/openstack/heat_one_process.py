"""Runs OpenStack Heat's API and engine in one process, for the tests only.

Heat 27 ships its API and engine as separate programs that talk over a message bus. Tests
need neither a bus nor several processes: here both run in this one process over
oslo.messaging's in-memory `fake://` transport (the engine is started directly, never
forked, because in-memory queues do not cross a fork).

    heat_one_process.py --config-file heat.conf --bind 127.0.0.1 --port 35004 [--fast-steps]

`--fast-steps` shortens Heat's fixed one-second waits between task steps to 0.1 s (a test
speed-up only: what Heat does, and in which order, is unchanged).
"""

import argparse
import socketserver
import sys
import wsgiref.simple_server


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fast-steps", action="store_true")
    return parser.parse_args()


class ThreadingServer(socketserver.ThreadingMixIn, wsgiref.simple_server.WSGIServer):
    daemon_threads = True


class QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        sys.stderr.write("heat-api %s\n" % (format % args))


def main():
    arguments = parse_arguments()

    # The threading backend must be chosen before any Heat module is imported.
    from oslo_service import backend

    backend.init_backend(backend.BackendType.THREADING)

    from oslo_config import cfg
    from oslo_log import log as logging

    conf = cfg.CONF
    logging.register_options(conf)
    conf(["--config-file", arguments.config_file], project="heat", prog="heat-api")
    logging.setup(conf, "heat")

    from heat.common import config
    from heat.common import messaging

    config.set_config_defaults()
    messaging.setup()

    # The engine module registers options the sanity check reads.
    from heat.engine import service as engine_service
    import heat.rpc.api as rpc_api

    config.startup_sanity_check()

    if arguments.fast_steps:
        from heat.engine import scheduler

        scheduler.ENABLE_SLEEP = False
        original_sleep = scheduler.TaskRunner._sleep

        def short_sleep(self, wait_time):
            return original_sleep(self, min(wait_time, 0.1) if wait_time else wait_time)

        scheduler.TaskRunner._sleep = short_sleep

    engine = engine_service.EngineService(conf.host, rpc_api.ENGINE_TOPIC)
    engine.start()

    application = config.load_paste_app("heat-api")
    server = wsgiref.simple_server.make_server(
        arguments.bind,
        arguments.port,
        application,
        server_class=ThreadingServer,
        handler_class=QuietHandler,
    )
    sys.stderr.write(
        "heat (API and engine) listening on http://%s:%d\n" % (arguments.bind, arguments.port)
    )
    try:
        server.serve_forever()
    finally:
        engine.stop()


if __name__ == "__main__":
    main()
