"""Local AWS for the test environment: moto plus an EKS token-review webhook.

Started by `scripts/testenv/testenv.sh up` with the moto venv's python; binds 127.0.0.1 only.

- moto server (EKS, STS, S3, ...) on 127.0.0.1:$MOTO_PORT.
- Every EKS cluster reports endpoint=$TESTENV_KUBE_ENDPOINT and certificateAuthority.data =
  base64($TESTENV_CA_FILE), so DescribeCluster points at the local kube-apiserver.
- $TESTENV_EKS_CLUSTERS (comma-separated) names EKS clusters created at start, each with the node
  groups of $TESTENV_EKS_NODEGROUPS: the eks profile's cluster, for rehearsals.
- $TESTENV_EKS_CREATING_SECONDS (default 0): an EKS cluster reports CREATING for that long
  after it is first described (moto makes clusters ACTIVE at once), for waits that must poll:
  counted from the first DescribeCluster, the first answer a poller gets is always CREATING.
- A TokenReview webhook on https://127.0.0.1:$WEBHOOK_PORT/authenticate (TLS with
  $WEBHOOK_TLS_CERT/$WEBHOOK_TLS_KEY; plain http if they are unset). It accepts EKS tokens
  ('k8s-aws-v1.' + base64url of a presigned STS GetCallerIdentity URL with x-k8s-aws-id signed),
  checks them the way aws-iam-authenticator does (action, algorithm, signed headers, age), asks
  moto's STS who owns the access key, and maps that ARN to a Kubernetes user in
  $TESTENV_EKS_GROUPS (default system:masters).

moto checks no signatures: the webhook proves the token's shape, freshness and the caller's
identity as moto knows it, not the signature.
"""

import base64
import datetime
import http.client
import json
import os
import re
import signal
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import moto.eks.models as eks_models
from moto.server import ThreadedMotoServer

HOST = "127.0.0.1"
MOTO_PORT = int(os.environ["MOTO_PORT"])
WEBHOOK_PORT = int(os.environ.get("WEBHOOK_PORT", "0"))
KUBE_ENDPOINT = os.environ.get("TESTENV_KUBE_ENDPOINT")
CA_FILE = os.environ.get("TESTENV_CA_FILE")
TLS_CERT = os.environ.get("WEBHOOK_TLS_CERT")
TLS_KEY = os.environ.get("WEBHOOK_TLS_KEY")
GROUPS = [g for g in os.environ.get("TESTENV_EKS_GROUPS", "system:masters").split(",") if g]

PREFIX = "k8s-aws-v1."
MAX_AGE = datetime.timedelta(minutes=15)  # aws-iam-authenticator: tokens live 15 minutes
STS_HOST = re.compile(r"^sts(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?$")

if KUBE_ENDPOINT and CA_FILE:
    with open(CA_FILE, "rb") as f:
        CA_B64 = base64.b64encode(f.read()).decode()
    _orig_init = eks_models.Cluster.__init__

    def _init(self, *args, **kwargs):
        _orig_init(self, *args, **kwargs)
        self.endpoint = KUBE_ENDPOINT
        self.certificate_authority = {"data": CA_B64}

    eks_models.Cluster.__init__ = _init

CREATING_SECONDS = float(os.environ.get("TESTENV_EKS_CREATING_SECONDS", "0"))
if CREATING_SECONDS > 0:
    _plain_describe = eks_models.EKSBackend.describe_cluster

    def _describe(self, name):
        cluster = _plain_describe(self, name)
        first = cluster.__dict__.setdefault("first_described_monotonic", time.monotonic())
        cluster.status = "CREATING" if time.monotonic() - first < CREATING_SECONDS else "ACTIVE"
        return cluster

    eks_models.EKSBackend.describe_cluster = _describe


def caller_arn(token):
    """Return (arn, None) for a valid EKS token, else (None, reason)."""
    if not token.startswith(PREFIX):
        return None, "not an EKS token"
    raw = token[len(PREFIX):]
    try:
        url = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None, "token is not base64url"
    parsed = urllib.parse.urlparse(url)
    host = parsed.hostname or ""
    if not (STS_HOST.match(host) or (host == HOST and parsed.port == MOTO_PORT)):
        return None, f"token is not for STS ({host})"
    q = urllib.parse.parse_qs(parsed.query)
    first = lambda k: q.get(k, [""])[0]  # noqa: E731
    if first("Action") != "GetCallerIdentity":
        return None, "token is not a GetCallerIdentity request"
    if first("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        return None, "token is not signed with AWS4-HMAC-SHA256"
    if "x-k8s-aws-id" not in first("X-Amz-SignedHeaders").split(";"):
        return None, "x-k8s-aws-id is not signed"
    if not first("X-Amz-Signature"):
        return None, "token has no signature"
    try:
        signed = datetime.datetime.strptime(first("X-Amz-Date"), "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        return None, "token has no valid X-Amz-Date"
    age = datetime.datetime.now(datetime.timezone.utc) - signed
    if age > MAX_AGE or age < -datetime.timedelta(minutes=5):
        return None, "token expired"
    cred = first("X-Amz-Credential")
    if cred.count("/") != 4:
        return None, "token has no valid X-Amz-Credential"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        # moto routes by the credential scope and checks no signature
        "Authorization": f"AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host, Signature=0",
    }
    if first("X-Amz-Security-Token"):
        headers["X-Amz-Security-Token"] = first("X-Amz-Security-Token")
    conn = http.client.HTTPConnection(HOST, MOTO_PORT, timeout=10)
    try:
        conn.request("POST", "/", body="Action=GetCallerIdentity&Version=2011-06-15",
                     headers=headers)
        resp = conn.getresponse()
        body = resp.read().decode()
    finally:
        conn.close()
    m = re.search(r"<Arn>(.*?)</Arn>", body)
    if resp.status != 200 or not m:
        return None, f"STS GetCallerIdentity failed ({resp.status})"
    return m.group(1), None


class Webhook(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802
        try:
            review = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            arn, err = caller_arn(review.get("spec", {}).get("token", ""))
        except Exception as e:  # a bad request must not kill the thread silently
            review, arn, err = {}, None, f"bad TokenReview: {e}"
        if arn:
            status = {"authenticated": True,
                      "user": {"username": arn, "uid": "aws-iam-authenticator:" + arn,
                               "groups": GROUPS, "extra": {"arn": [arn]}}}
        else:
            status = {"authenticated": False, "error": err}
        print(f"tokenreview authenticated={bool(arn)} {arn or err}", flush=True)
        out = json.dumps({"apiVersion": review.get("apiVersion", "authentication.k8s.io/v1"),
                          "kind": "TokenReview", "status": status}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def precreate_clusters(names):
    """EKS clusters that exist from the start (the eks profile's, for rehearsals), with node
    groups named after the profile's pools. Made in moto's backend before its server listens,
    so no client (a wait polling across a restart) ever sees moto without them."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.eks.models import eks_backends

    eks = eks_backends[DEFAULT_ACCOUNT_ID][os.environ.get("AWS_REGION", "us-east-1")]
    for name in names:
        eks.create_cluster(name=name, version="1.36", role_arn="arn:aws:iam::123456789012:role/eks-cluster",
                           resources_vpc_config={"subnetIds": ["subnet-0a1b2c3d"]})
        for ng in [n for n in os.environ.get("TESTENV_EKS_NODEGROUPS", "").split(",") if n]:
            eks.create_nodegroup(cluster_name=name, nodegroup_name=ng,
                                 node_role="arn:aws:iam::123456789012:role/eks-node",
                                 subnets=["subnet-0a1b2c3d"],
                                 scaling_config={"minSize": 1, "maxSize": 13, "desiredSize": 1})
        print(f"eks cluster {name} created", flush=True)


def main():
    precreate_clusters([n for n in os.environ.get("TESTENV_EKS_CLUSTERS", "").split(",") if n])
    moto = ThreadedMotoServer(ip_address=HOST, port=MOTO_PORT, verbose=False)
    moto.start()
    hook = ThreadingHTTPServer((HOST, WEBHOOK_PORT), Webhook)
    scheme = "http"
    if TLS_CERT and TLS_KEY:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(TLS_CERT, TLS_KEY)
        hook.socket = ctx.wrap_socket(hook.socket, server_side=True)
        scheme = "https"
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    print(f"moto=http://{HOST}:{MOTO_PORT} "
          f"webhook={scheme}://{HOST}:{hook.server_address[1]}/authenticate "
          f"kube={KUBE_ENDPOINT}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    hook.shutdown()
    moto.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
