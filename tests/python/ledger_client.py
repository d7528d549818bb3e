"""A finance team's Python script against ledgerd, written from proto/ alone.

The end-to-end tests run it (tests/tests/python_client.rs) the way a finance team would load a
month-end: grpcio from PyPI, stubs generated from proto/ with grpcio-tools, the standard
`grpc_status` helper for error details. Needs `deploy/local/install-test-tools.sh` (which
installs those into .local/py) and PYTHONPATH=.local/py.

    python3 tests/python/ledger_client.py --target 127.0.0.1:50051 setup
    python3 tests/python/ledger_client.py --target 127.0.0.1:50051 bulk --count 100000
    python3 tests/python/ledger_client.py --target 127.0.0.1:50051 refused-bulk --good 3

Each prints one JSON object on stdout: what the server answered.
"""

import argparse
import json
import os
import sys
import tempfile
import uuid

import grpc
from grpc_status import rpc_status
from grpc_tools import protoc

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def stubs():
    """Generates the Python code of proto/ into a temporary directory and imports it."""
    out = tempfile.mkdtemp(prefix="ics-ledger-py-")
    proto = os.path.join(ROOT, "proto")
    files = [
        os.path.join(proto, "ics", "ledger", "v1", name)
        for name in ("common.proto", "commands.proto", "events.proto", "ledger.proto")
    ]
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    code = protoc.main(
        ["protoc", f"-I{proto}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}"]
        + files
    )
    if code != 0:
        sys.exit(f"protoc failed ({code})")
    sys.path.insert(0, out)
    from ics.ledger.v1 import commands_pb2, common_pb2, ledger_pb2, ledger_pb2_grpc

    return commands_pb2, common_pb2, ledger_pb2, ledger_pb2_grpc


commands_pb2, common_pb2, ledger_pb2, ledger_pb2_grpc = stubs()


# Sent with every call: the bearer token, when one is given.
METADATA = []


def meta():
    return common_pb2.CommandMeta(request_id=str(uuid.uuid4()))


def metric(value):
    return commands_pb2.Command(
        report_metric=commands_pb2.ReportMetricRequest(
            meta=meta(),
            member="KHFT",
            period=common_pb2.Period(year=2018, month=1),
            metric=common_pb2.METRIC_EMERGENCY_ADMISSIONS,
            value=value,
        )
    )


def status_of(error):
    """What a refused call said, read the standard way: code, message and the google.rpc
    details that grpc_status.rpc_status.from_call decodes."""
    out = {"code": error.code().name, "message": error.details()}
    try:
        status = rpc_status.from_call(error)
    except ValueError as refused:
        out["from_call_error"] = str(refused)
        return out
    if status is None:
        out["rpc_status"] = None
        return out
    from google.rpc import error_details_pb2

    details = []
    for any_detail in status.details:
        if any_detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_detail.Unpack(bad)
            details.append(
                {
                    "type": "BadRequest",
                    "fields": [v.field for v in bad.field_violations],
                    "descriptions": [v.description for v in bad.field_violations],
                }
            )
        else:
            details.append({"type": any_detail.type_url})
    out["rpc_status"] = {"code": status.code, "message": status.message, "details": details}
    return out


def run(call):
    try:
        reply = call()
    except grpc.RpcError as error:
        print(json.dumps({"ok": False, **status_of(error)}))
        return 1
    print(json.dumps({"ok": True, **reply}))
    return 0


def setup(stub):
    stub.EstablishSystem(
        commands_pb2.EstablishSystemRequest(
            meta=meta(), system="kav", name="Kingsmere & Alder Valley ICS", first_year=2018
        ),
        metadata=METADATA,
    )
    stub.AdmitMember(
        commands_pb2.AdmitMemberRequest(
            meta=meta(),
            member="KHFT",
            name="Kingsmere Hospitals",
            kind=common_pb2.MEMBER_KIND_ACUTE_TRUST,
            in_control_total=True,
        ),
        metadata=METADATA,
    )
    return {"head": stub.Head(ledger_pb2.HeadRequest(), metadata=METADATA).sequence}


def bulk(stub, count):
    """One SubmitBulk of `count` commands, each produced as the client sends it."""
    reply = stub.SubmitBulk((metric(i) for i in range(count)), metadata=METADATA)
    return {
        "accepted": reply.accepted,
        "duplicates": reply.duplicates,
        "first_sequence": reply.first_sequence,
        "last_sequence": reply.last_sequence,
    }


def refused_bulk(stub, good):
    """`good` valid commands, then one naming a member that is not an ODS code."""
    bad = metric(1)
    bad.report_metric.member = "not a code"
    stub.SubmitBulk(iter([metric(i) for i in range(good)] + [bad, metric(0)]), metadata=METADATA)
    return {}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--token")
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("setup")
    b = sub.add_parser("bulk")
    b.add_argument("--count", type=int, required=True)
    r = sub.add_parser("refused-bulk")
    r.add_argument("--good", type=int, default=3)
    args = parser.parse_args()

    if args.token:
        METADATA.append(("authorization", f"Bearer {args.token}"))
    stub = ledger_pb2_grpc.LedgerServiceStub(grpc.insecure_channel(args.target))
    if args.what == "setup":
        return run(lambda: setup(stub))
    if args.what == "bulk":
        return run(lambda: bulk(stub, args.count))
    return run(lambda: refused_bulk(stub, args.good))


if __name__ == "__main__":
    sys.exit(main())
