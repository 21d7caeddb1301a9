"""A real SMTP relay with TLS and authentication for Herald's tests (aiosmtpd, Debian's
python3-aiosmtpd): `implicit` speaks TLS from the first byte (smtps), `starttls` requires
STARTTLS before anything else. Both require AUTH with the given user and password over the
encrypted connection; `--only` limits the mechanisms offered (PLAIN or LOGIN).

Prints `PORT n` once listening, then one JSON line per accepted message:
{"from", "to", "tls", "auth"}. Stops when stdin closes (the test ends).
"""

import argparse
import asyncio
import json
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["implicit", "starttls"])
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--only", choices=["PLAIN", "LOGIN"])
    args = parser.parse_args()

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            encrypted = server.transport.get_extra_info("sslcontext") is not None
            print(
                json.dumps(
                    {
                        "from": envelope.mail_from,
                        "to": envelope.rcpt_tos,
                        "tls": encrypted,
                        "auth": session.authenticated,
                    }
                ),
                flush=True,
            )
            return "250 2.0.0 OK: queued"

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == args.user.encode()
            and auth_data.password == args.password.encode()
        )
        return AuthResult(success=ok, handled=False)

    excluded = []
    if args.only:
        excluded = [m for m in ("PLAIN", "LOGIN") if m != args.only]

    def factory():
        options = dict(
            authenticator=authenticate,
            auth_require_tls=args.mode == "starttls",
            auth_required=True,
            auth_exclude_mechanism=excluded,
        )
        if args.mode == "starttls":
            options.update(tls_context=context, require_starttls=True)
        return SMTP(Handler(), hostname="localhost", **options)

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            factory, "127.0.0.1", 0, ssl=context if args.mode == "implicit" else None
        )
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        # The test holds stdin open; its end is the end of the relay.
        await loop.run_in_executor(None, sys.stdin.read)
        server.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
