"""The flags of gunicorn, uvicorn and Locust, and what twincorn makes of each.

People come to `twincorn serve` with gunicorn's or uvicorn's command lines
in their fingers, and to `twincorn load` with Locust's. This table is the
one place that says, for each of their flags, what twincorn does with it:

    SAME      twincorn has this very flag (perhaps with a note)
    ALIAS     accepted as it is, hidden from --help: it means exactly the
              twincorn flag it names
    ACCEPTED  accepted and ignored: twincorn already behaves so
    SPELLED   twincorn has the thing under another name; the peer's
              spelling is refused with that name, because the meaning
              differs in some way the note says
    MISSING   twincorn does not do this; the note says what to do instead
    LATER     not yet in twincorn (a later version brings it)

The command line (cli_parser.py) registers the ALIAS and ACCEPTED flags
and answers a refused one with its note; config.py points a gunicorn
setting name in a config file at twincorn's; docs/gunicorn-uvicorn.md and
docs/load.md show the tables made by `render` (a test keeps them in sync:
`python -m twincorn.peer_flags` rewrites them).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path


class Peer(Enum):
    GUNICORN = "gunicorn"
    UVICORN = "uvicorn"
    LOCUST = "Locust"


class Verdict(Enum):
    SAME = "same"
    ALIAS = "alias"
    ACCEPTED = "accepted"
    SPELLED = "spelled"
    MISSING = "missing"
    LATER = "later"


#: The verdicts whose flags the command line accepts.
ACCEPTED = (Verdict.SAME, Verdict.ALIAS, Verdict.ACCEPTED)


@dataclass(frozen=True, slots=True)
class PeerFlag:
    command: str  # the twincorn subcommand: "serve" or "load"
    peers: tuple[Peer, ...]
    flags: tuple[str, ...]  # the peer's spellings of it
    verdict: Verdict
    twincorn: str = ""  # twincorn's flag (SAME, ALIAS, SPELLED), as typed
    note: str = ""
    setting: str = ""  # gunicorn's name for it in a config file, where it differs
    conflicts: str = ""  # ACCEPTED: the twincorn flag it contradicts

    def advice(self, typed: str = "") -> str:
        """One line for a refused flag (`typed`, one of `flags`): what
        twincorn does instead."""
        whose = " and ".join(p.value for p in self.peers)
        head = f"{typed or self.flags[-1]} is {whose}'s"
        if self.verdict is Verdict.SPELLED:
            return f"{head}; twincorn spells it {self.twincorn}" + (
                f" ({self.note})" if self.note else "")
        return f"{head}: {self.note}"


G, U, L = (Peer.GUNICORN,), (Peer.UVICORN,), (Peer.LOCUST,)
GU = (Peer.GUNICORN, Peer.UVICORN)
SAME, ALIAS, SPELLED, MISSING, LATER = (Verdict.SAME, Verdict.ALIAS, Verdict.SPELLED,
                                        Verdict.MISSING, Verdict.LATER)
_LOGCONFIG = ("twincorn logs to the standard loggers twincorn.error and twincorn.access: "
              "configure them with logging.config from the application, or use --log-level, "
              "--error-logfile and --access-logfile")
_USER = ("twincorn does not switch users: start it as that user (systemd's User= and "
         "Group=, a container's USER)")
_DISTRIBUTED = ("twincorn load runs on one machine: --processes N (or auto) runs N load "
                "processes whose histograms merge exactly")


def _serve(peers: tuple[Peer, ...], flags: str, verdict: Verdict, twincorn: str = "",
           note: str = "", setting: str = "") -> PeerFlag:
    return PeerFlag("serve", peers, tuple(flags.split()), verdict, twincorn, note, setting)


def _load(flags: str, verdict: Verdict, twincorn: str = "", note: str = "",
          conflicts: str = "") -> PeerFlag:
    return PeerFlag("load", L, tuple(flags.split()), verdict, twincorn, note,
                    conflicts=conflicts)


TABLE: tuple[PeerFlag, ...] = (
    # -- twincorn serve: where to listen
    _serve(G, "-b --bind", SAME, "-b/--bind",
           "HOST:PORT, HOST (port 8000), [IPV6]:PORT, unix:PATH, fd://N; repeatable"),
    _serve(U, "--host", SAME, "--host"),
    _serve(U, "--port", SAME, "--port"),
    _serve(U, "--uds", SPELLED, "-b unix:PATH"),
    _serve(U, "--fd", SPELLED, "-b fd://N"),
    _serve(GU, "--backlog", SAME, "--backlog"),
    _serve(G, "--reuse-port", SAME, "--reuse-port"),
    # -- processes
    _serve(G, "-w", SAME, "-w"),
    _serve(GU, "--workers", SAME, "--workers"),
    _serve(G, "-k --worker-class", MISSING, "",
           "twincorn has one worker, an event loop for WSGI and ASGI alike: leave -k out "
           "(--threads N runs blocking WSGI calls in threads, as gthread; --loop picks "
           "uvloop or asyncio)", "worker_class"),
    _serve(G, "--threads", SAME, "--threads", "WSGI calls at once per worker, as gthread"),
    _serve(G, "--worker-connections", SAME, "--worker-connections"),
    _serve(G, "-t", ALIAS, "--timeout"),
    _serve(G, "--timeout", SAME, "--timeout",
           "a worker whose event loop is blocked this long is killed and replaced"),
    _serve(G, "--graceful-timeout", SAME, "--graceful-timeout"),
    _serve(U, "--timeout-graceful-shutdown", ALIAS, "--graceful-timeout"),
    _serve(G, "--keep-alive", ALIAS, "--timeout-keep-alive", setting="keepalive"),
    _serve(U, "--timeout-keep-alive", SAME, "--timeout-keep-alive"),
    _serve(G, "--max-requests", SAME, "--max-requests"),
    _serve(G, "--max-requests-jitter", SAME, "--max-requests-jitter"),
    _serve(U, "--limit-max-requests", SPELLED, "--max-requests",
           "the worker is replaced and the server goes on"),
    _serve(U, "--limit-concurrency", SPELLED, "--worker-connections",
           "per worker; at the limit the connection that made the least progress is closed, "
           "503 only when every one waits for the application"),
    _serve(G, "--preload", SAME, "--preload", setting="preload_app"),
    _serve(G, "-p", ALIAS, "--pid"),
    _serve(G, "--pid", SAME, "--pid", setting="pidfile"),
    _serve(G, "-D --daemon", MISSING, "",
           "twincorn stays in the foreground: run it under systemd, supervisord or a "
           "container", "daemon"),
    _serve(G, "-u --user", MISSING, "", _USER, "user"),
    _serve(G, "-g --group", MISSING, "", _USER, "group"),
    _serve(G, "-m --umask", MISSING, "",
           "set the umask before starting (umask 007; systemd's UMask=); "
           "--unix-socket-mode sets a unix: socket's", "umask"),
    _serve(G, "-n --name", MISSING, "",
           "the process titles are twincorn: master [APP] and twincorn: worker [APP] "
           "(with setproctitle installed)", "proc_name"),
    _serve(G, "--worker-tmp-dir", MISSING, "",
           "not needed: the heartbeat is shared memory, not a file", "worker_tmp_dir"),
    # -- the application
    _serve(G, "--chdir", MISSING, "",
           "run `cd DIR && twincorn serve ...`, or --app-dir DIR to import the application "
           "from DIR", "chdir"),
    _serve(G, "--pythonpath", SPELLED, "--app-dir DIR",
           "one folder put first on sys.path; for more, set PYTHONPATH", "pythonpath"),
    _serve(U, "--app-dir", SAME, "--app-dir"),
    _serve(U, "--factory", SAME, "--factory"),
    _serve(U, "--interface", SAME, "--interface",
           "auto, asgi or wsgi: uvicorn's asgi3 is asgi; ASGI 2 is not served"),
    _serve(U, "--lifespan", SAME, "--lifespan"),
    _serve(U, "--root-path", SAME, "--root-path"),
    _serve(G, "--paste --paster", MISSING, "",
           "build the application with paste.deploy's loadapp in a module, then "
           "twincorn serve module:app"),
    _serve(G, "-e --env", MISSING, "",
           "set the variable in twincorn's environment: NAME=value twincorn serve ...",
           "raw_env"),
    _serve(U, "--env-file", MISSING, "",
           "set the variables in the environment first (set -a; . ./.env; set +a) or with "
           "systemd's EnvironmentFile="),
    _serve(G, "-c --config", SAME, "-c/--config",
           "a Python file with twincorn's setting names (docs/processes.md)"),
    _serve(G, "--check-config", SAME, "--check-config"),
    _serve(G, "--print-config", SAME, "--print-config"),
    # -- HTTP
    _serve(U, "--loop", SAME, "--loop", "auto, uvloop or asyncio"),
    _serve(U, "--http", MISSING, "",
           "twincorn has one HTTP/1.1 parser, httptools (llhttp): leave --http out"),
    _serve(G, "--limit-request-line", SAME, "--limit-request-line"),
    _serve(G, "--limit-request-fields", SAME, "--limit-request-fields"),
    _serve(G, "--limit-request-field_size", ALIAS, "--limit-request-field-size"),
    _serve(U, "--h11-max-incomplete-event-size", SPELLED, "--limit-request-head"),
    _serve(U, "--server-header --no-server-header", SAME, "--server-header"),
    _serve(U, "--date-header --no-date-header", MISSING, "",
           "twincorn always sends Date (RFC 9110 section 6.6.1)"),
    _serve(U, "--header", MISSING, "",
           "set response headers in the application, or in a middleware"),
    _serve(GU, "--forwarded-allow-ips", SAME, "--forwarded-allow-ips",
           "default 127.0.0.1,::1,unix; FORWARDED_ALLOW_IPS read too. Their X-Forwarded-For, "
           "-Proto, -Host, -Port and Forwarded set the client, scheme and host "
           "(docs/deployment.md); gunicorn's secure_scheme_headers is not built: "
           "X-Forwarded-Proto is read, X-Forwarded-Ssl and X-Forwarded-Protocol are not"),
    _serve(U, "--proxy-headers --no-proxy-headers", SAME, "--proxy-headers",
           "on by default, as in uvicorn"),
    _serve(G, "--proxy-protocol", SAME, "--proxy-protocol",
           "a switch: both versions are read (gunicorn's auto; its off, v1, v2 are not "
           "taken); from --proxy-allow-ips the header is required (a connection without one "
           "is closed), from other peers it is not read"),
    _serve(G, "--proxy-allow-from", ALIAS, "--proxy-allow-ips"),
    _serve(G, "--certfile", SAME, "--certfile", "every TCP --bind speaks TLS; read again on HUP"),
    _serve(G, "--keyfile", SAME, "--keyfile"),
    _serve(G, "--ca-certs", SAME, "--ca-certs"),
    _serve(G, "--cert-reqs", SAME, "--cert-reqs", "none, optional, required; or 0, 1, 2"),
    _serve(G, "--ciphers", SAME, "--ciphers"),
    _serve(GU, "--ssl-version", SPELLED, "--tls-min-version",
           "1.2 or 1.3, the oldest version accepted", "ssl_version"),
    _serve(G, "--do-handshake-on-connect", MISSING, "",
           "twincorn always completes the handshake before reading a request, within "
           "--tls-handshake-timeout", "do_handshake_on_connect"),
    _serve(G, "--suppress-ragged-eofs", MISSING, "",
           "a client that closes without TLS close_notify is taken as gone, as always",
           "suppress_ragged_eofs"),
    _serve(U, "--ssl-certfile", SAME, "--certfile", "the same setting as --certfile"),
    _serve(U, "--ssl-keyfile", SAME, "--keyfile", "the same setting as --keyfile"),
    _serve(U, "--ssl-keyfile-password", SAME, "--keyfile-password",
           "the same setting as --keyfile-password"),
    _serve(U, "--ssl-ca-certs", SAME, "--ca-certs", "the same setting as --ca-certs"),
    _serve(U, "--ssl-cert-reqs", SAME, "--cert-reqs", "the same setting as --cert-reqs"),
    _serve(U, "--ssl-ciphers", SAME, "--ciphers", "the same setting as --ciphers"),
    _serve(U, "--ws", SAME, "--ws", "auto, websockets, websockets-sansio, wsproto or none; "
           "websockets and websockets-sansio are one thing here (the library's sans-IO "
           "protocol, driven by twincorn's own connection)"),
    _serve(U, "--ws-max-size", SAME, "--ws-max-size", "sizes may be written 16m"),
    _serve(U, "--ws-max-queue", SAME, "--ws-max-queue"),
    _serve(U, "--ws-ping-interval", SAME, "--ws-ping-interval", "0 for never"),
    _serve(U, "--ws-ping-timeout", SAME, "--ws-ping-timeout"),
    _serve(U, "--ws-per-message-deflate", SAME, "--ws-per-message-deflate",
           "on in both by default; uvicorn's --ws-per-message-deflate false is "
           "--no-ws-per-message-deflate"),
    # -- logging
    _serve(GU, "--log-level", SAME, "--log-level",
           "critical, error, warning, info or debug; uvicorn's trace is twincorn's --trace, "
           "which shows what passes between server and application", "loglevel"),
    _serve(G, "--error-logfile", SAME, "--error-logfile", setting="errorlog"),
    _serve(G, "--log-file", ALIAS, "--error-logfile"),
    _serve(G, "--access-logfile", SAME, "--access-logfile",
           "twincorn writes the access log to stdout unless --no-access-log", "accesslog"),
    _serve(U, "--access-log --no-access-log", SAME, "--access-log"),
    _serve(G, "--access-logformat", ALIAS, "--access-log-format"),
    _serve(GU, "--log-config", MISSING, "", _LOGCONFIG, "logconfig"),
    _serve(G, "--log-config-dict", MISSING, "", _LOGCONFIG, "logconfig_dict"),
    _serve(G, "--logger-class", MISSING, "", _LOGCONFIG, "logger_class"),
    _serve(U, "--use-colors --no-use-colors", MISSING, "", "the log has no colours"),
    _serve(G, "--capture-output", MISSING, "",
           "the workers write to the master's stdout and stderr already", "capture_output"),
    _serve(G, "--statsd-host", MISSING, "", "twincorn sends no statsd metrics",
           "statsd_host"),
    # -- development
    _serve(GU, "--reload", SAME, "--reload", "needs the watchfiles package"),
    _serve(U, "--reload-dir", SAME, "--reload-dir"),
    _serve(U, "--reload-include", SAME, "--reload-include"),
    _serve(U, "--reload-exclude", SAME, "--reload-exclude"),
    _serve(G, "--reload-extra-file", SPELLED, "--reload-include GLOB",
           "a pattern of file names to watch", "reload_extra_files"),
    _serve(U, "--reload-delay", MISSING, "",
           "changes are gathered for 100 ms, then the workers are replaced"),
    _serve(G, "--reload-engine", MISSING, "", "twincorn's --reload uses watchfiles"),
    # -- twincorn load, beside Locust
    _load("-f", SAME, "-f",
          "twincorn's User classes are async: `async def` tasks that `await "
          "self.client.get(...)` (docs/load.md)"),
    _load("--locustfile", ALIAS, "--scenario"),
    _load("-H --host", SAME, "-H/--host"),
    _load("-u --users", SAME, "-u/--users"),
    _load("-r --spawn-rate", SAME, "-r/--spawn-rate"),
    _load("-t --run-time", SAME, "-t/--run-time", "30s, 2m, 1h10m"),
    _load("--headless", Verdict.ACCEPTED, "",
          "twincorn load is headless unless --web is given", conflicts="--web"),
    _load("--processes", SAME, "--processes", "auto for one per CPU (Locust's -1)"),
    _load("--stop-timeout", SAME, "--stop-timeout"),
    _load("--csv", SAME, "--csv", "the same files and columns"),
    _load("--csv-full-history", MISSING, "",
          "--csv writes PREFIX_stats_history.csv already: the aggregated figures, a row a "
          "second"),
    _load("--html", SAME, "--html"),
    _load("--json", SAME, "--json", "takes a FILE to write"),
    _load("--web-host", SAME, "--web-host"),
    _load("--web-port", SAME, "--web-port"),
    _load("-P", ALIAS, "--web-port"),
    _load("--autostart --autoquit", MISSING, "",
          "without --web the run starts at once and ends by itself"),
    _load("--web-auth", MISSING, "", "the web UI listens on 127.0.0.1 unless --web-host"),
    _load("--exit-code-on-error", SPELLED, "--fail-on EXPR",
          "exit status 1 when any request failed is the default; --fail-on "
          "'error_rate>1%' sets your own rule"),
    _load("--reset-stats", SPELLED, "--warmup TIME",
          "load for this long first without counting it"),
    _load("--only-summary --print-stats", MISSING, "",
          "a live status line and the final table are shown unless -q"),
    _load("-L --loglevel --logfile", MISSING, "",
          "failures are in the final table and in --csv PREFIX_failures.csv"),
    _load("-l --list", MISSING, "",
          "a scenario file that does not load says why, naming its User classes"),
    _load("-T --tags -E --exclude-tags", MISSING, "",
          "put the tasks to run in a User class of their own"),
    _load("--config", MISSING, "", "twincorn load reads no config file: keep the flags in a "
          "script"),
    _load("--master --worker --master-host --expect-workers", MISSING, "", _DISTRIBUTED),
)


def entries(command: str) -> list[PeerFlag]:
    return [e for e in TABLE if e.command == command]


def find(command: str, flag: str) -> PeerFlag | None:
    """The entry of `command` for a peer's flag, as typed (`--uds`)."""
    for entry in TABLE:
        if entry.command == command and flag in entry.flags:
            return entry
    return None


def for_setting(name: str) -> PeerFlag | None:
    """The serve entry whose gunicorn config-file name is `name` (`keepalive`)."""
    return next((e for e in TABLE if e.setting == name), None)


# -- the tables in the docs ---------------------------------------------------

_MARK = re.compile(r"(<!-- peer-flags (serve|load) (\w+) -->\n)(.*?)(<!-- end peer-flags -->)",
                   re.DOTALL)
_SAID = {
    Verdict.SAME: "{twincorn}",
    Verdict.ALIAS: "accepted as it is: {twincorn}",
    Verdict.ACCEPTED: "accepted, does nothing",
    Verdict.SPELLED: "{twincorn}",
    Verdict.MISSING: "none",
    Verdict.LATER: "not yet",
}


def render(command: str, peer: Peer) -> str:
    """The markdown table of one peer's flags for one twincorn command."""
    lines = [f"| {peer.value} | twincorn | note |", "|---|---|---|"]
    for entry in entries(command):
        if peer not in entry.peers:
            continue
        said = _SAID[entry.verdict].format(twincorn=f"`{entry.twincorn}`")
        flags = ", ".join(f"`{f}`" for f in entry.flags)
        lines.append(f"| {flags} | {said} | {entry.note} |")
    return "\n".join(lines) + "\n"


def refresh(text: str) -> str:
    """`text` with every marked table made again from TABLE."""
    def table(m: re.Match[str]) -> str:
        return m.group(1) + render(m.group(2), Peer[m.group(3).upper()]) + m.group(5)

    return _MARK.sub(table, text)


def main(paths: list[str]) -> int:
    for path in paths:
        file = Path(path)
        file.write_text(refresh(file.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["docs/gunicorn-uvicorn.md", "docs/load.md"]))
