#!/usr/bin/env python3
"""Writes the seed corpora of the text and packet fuzz targets from the project's own inputs.

  sip          every message of the SIPp scenarios (loadtest/sipp/*.xml), SIPp's keywords
               filled in, plus REGISTERs with digest credentials, INFO, REFER, an unknown method
  sdp          the SDP bodies of those scenarios and of services/media/src/sdp.rs's tests
  rtp          G.711 frames, RFC 4733 key presses, CSRC / extension / padding packets
  tenant_yaml  services/config/demo/demo.yaml, services/callgrid/tests/sip/siptest.yaml and the
               YAML documents of services/config/tests/load.rs
  http         one request per route of the supervisor service, with each credential kind

The envelope and access_record seeds are protobuf records (see fuzz/README.md).
Usage: python3 fuzz/make_seeds.py   (rewrites fuzz/corpus/{sip,sdp,rtp,tenant_yaml,http})
"""

import hashlib
import os
import re
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")

SIPP_VALUES = {
    "local_ip": "127.0.0.2",
    "local_port": "5999",
    "remote_ip": "127.0.0.1",
    "remote_port": "5060",
    "transport": "UDP",
    "pid": "4242",
    "call_number": "1",
    "service": "+15550000200",
    "branch": "z9hG4bK-4242-1-0",
    "branch-3": "z9hG4bK-4242-1-3",
    "call_id": "1-4242@127.0.0.2",
    "media_port": "6000",
    "media_ip": "127.0.0.2",
    "media_ip_type": "4",
    "local_ip_type": "4",
    "rtpstream_audio_port": "6000",
    "next_url": "sip:edge@127.0.0.1:5060",
    "routes": "",
    "peer_tag_param": ";tag=as0001",
    "field0": "alice",
    "field1": "secret1",
    "field2": "5081",
    "last_cseq_number": "1",
    "$caller_from": "<sip:+15551230000@127.0.0.2>;tag=4242",
    "$agent_to": "<sip:alice@127.0.0.1>;tag=ag1",
    "$target": "<sip:201@127.0.0.1>",
    "$invite_via": "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-edge-1",
    "$resume_type": "sendrecv",
    "$resume_media": "127.0.0.2",
    "$resume_dir": "sendrecv",
    "$digit": "5",
}

LAST = {
    "Call-ID": "Call-ID: 1-4242@127.0.0.2",
    "To": "To: <sip:+15550000200@127.0.0.1:5060>;tag=edge1",
    "From": "From: <sip:+15551230000@127.0.0.2:5999>;tag=4242SIPpTag001",
    "Via": "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-edge-1",
    "CSeq": "CSeq: 1 INVITE",
    "Record-Route": "",
}

AUTH = (
    'Authorization: Digest username="alice", realm="callgrid", '
    'nonce="675f3a1b.0123456789abcdef.00112233445566778899aabbccddeeff", '
    'uri="sip:127.0.0.1:5060", response="6629fae49393a05397450978507c4ef1", '
    "algorithm=MD5, qop=auth, nc=00000001, cnonce=\"0a4f113b\""
)


def fill(text):
    text = re.sub(r"\[authentication[^\]]*\]", AUTH, text)
    text = re.sub(r"\[last_([A-Za-z-]+):?\]", lambda m: LAST.get(m.group(1), ""), text)
    text = re.sub(r"\[(\$?[a-z_0-9-]+)\]", lambda m: SIPP_VALUES.get(m.group(1), m.group(0)), text)
    return text


def sipp_messages():
    out = []
    d = os.path.join(ROOT, "loadtest", "sipp")
    for name in sorted(os.listdir(d)):
        if not name.endswith(".xml"):
            continue
        xml = open(os.path.join(d, name), encoding="iso-8859-1").read()
        for i, block in enumerate(re.findall(r"<!\[CDATA\[(.*?)\]\]>", xml, re.S)):
            lines = [l.strip() for l in block.strip("\n").split("\n")]
            while lines and not lines[0]:
                lines.pop(0)
            if not lines or " " not in lines[0]:
                continue
            # headers up to the first empty line, then the body (SIPp keeps the body's lines)
            try:
                blank = lines.index("")
            except ValueError:
                blank = len(lines)
            head = [fill(l) for l in lines[:blank] if fill(l) != ""]
            body = "\r\n".join(fill(l) for l in lines[blank + 1 :]).strip("\r\n")
            body = body + "\r\n" if body else ""
            head = [re.sub(r"\[len\]", str(len(body.encode())), l) for l in head]
            msg = "\r\n".join(head) + "\r\n\r\n" + body
            out.append((f"{name[:-4]}-{i}", msg.encode()))
    return out


def extra_sip():
    base = (
        "{method} sip:{ruri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK776asdhds;rport\r\n"
        "Max-Forwards: 70\r\n"
        "To: <sip:{to}>{totag}\r\n"
        "From: <sip:alice@127.0.0.1>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710@198.51.100.7\r\n"
        "CSeq: 314159 {method}\r\n"
        "{extra}"
        "Content-Length: {length}\r\n\r\n{body}"
    )

    def msg(method, ruri, to, extra="", body="", totag=""):
        return base.format(
            method=method, ruri=ruri, to=to, extra=extra, body=body,
            length=len(body.encode()), totag=totag,
        ).encode()

    contact = "Contact: <sip:alice@192.168.1.20:5062;transport=udp>;expires=600, <sip:alice@10.0.0.1>\r\n"
    return [
        ("register-auth", msg("REGISTER", "127.0.0.1", "demo.alice@127.0.0.1", AUTH + "\r\n" + contact + "Expires: 3600\r\n")),
        ("register-wildcard", msg("REGISTER", "127.0.0.1", "alice@demo", "Contact: *\r\nExpires: 0\r\n")),
        ("invite-proxy-auth", msg("INVITE", "+15550000200@127.0.0.1", "+15550000200@127.0.0.1",
            AUTH.replace("Authorization", "Proxy-Authorization").replace("sip:127.0.0.1:5060", "sip:+15550000200@127.0.0.1") + "\r\nContent-Type: application/sdp\r\n",
            "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n")),
        ("info-relay", msg("INFO", "edge@127.0.0.1", "edge@127.0.0.1", "Content-Type: application/dtmf-relay\r\n", "Signal=5\r\nDuration=160\r\n", ";tag=x1")),
        ("info-dtmf", msg("INFO", "edge@127.0.0.1", "edge@127.0.0.1", "Content-Type: application/dtmf\r\n", "#", ";tag=x1")),
        ("refer", msg("REFER", "edge@127.0.0.1", "edge@127.0.0.1", "Refer-To: <sip:201@127.0.0.1;user=phone>\r\nReferred-By: <sip:alice@127.0.0.1>\r\n", "", ";tag=x1")),
        ("refer-replaces", msg("REFER", "edge@127.0.0.1", "edge@127.0.0.1", "Refer-To: <sip:bob@127.0.0.1?Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\n", "", ";tag=x1")),
        ("unknown-method", msg("FROBNICATE", "edge@127.0.0.1", "edge@127.0.0.1")),
        ("options-compact", b"OPTIONS sip:edge@127.0.0.1 SIP/2.0\r\nv: SIP/2.0/TCP [::1]:5999;branch=z9hG4bK1\r\nf: <sip:a@[::1]>;tag=1\r\nt: <sips:edge@127.0.0.1:5061;transport=tls>\r\ni: x1\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n"),
        ("response-200", b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-edge-1;received=127.0.0.2;rport=5999\r\nFrom: <sip:edge@127.0.0.1>;tag=e1\r\nTo: <sip:alice@127.0.0.2>;tag=a1\r\nCall-ID: c1@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.2:5999>\r\nContent-Type: application/sdp\r\nContent-Length: 98\r\n\r\nv=0\r\no=- 2 2 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 6002 RTP/AVP 0\r\n"),
        ("keepalive", b"\r\n\r\n"),
    ]


def sdp_bodies(sip):
    out = []
    for name, msg in sip:
        head, _, body = msg.partition(b"\r\n\r\n")
        if body.startswith(b"v=0"):
            out.append((name, body))
    src = open(os.path.join(ROOT, "services", "media", "src", "sdp.rs")).read()
    for i, lit in enumerate(re.findall(r'b?"(v=0[^"]*)"', src)):
        text = lit.replace("\\\n", "").replace("\\r", "\r").replace("\\n", "\n")
        text = re.sub(r"\n\s+", "\n", text) if "\\\n" in lit else text
        out.append((f"sdp-rs-{i}", text.encode("utf-8", "replace")))
    out.append(("ipv6-hold", b"v=0\r\no=- 7 8 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\na=sendonly\r\nm=audio 7000 RTP/AVP 0 8 96 101\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:30\r\nm=video 0 RTP/AVP 31\r\n"))
    return out


def rtp(pt, seq, ts, ssrc, payload, marker=False, csrc=(), ext=None, pad=0):
    b0 = 0x80 | (0x20 if pad else 0) | (0x10 if ext is not None else 0) | len(csrc)
    b1 = (0x80 if marker else 0) | pt
    p = struct.pack("!BBHII", b0, b1, seq, ts, ssrc)
    for c in csrc:
        p += struct.pack("!I", c)
    if ext is not None:
        p += struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext
    p += payload
    if pad:
        p += b"\0" * (pad - 1) + bytes([pad])
    return p


def rtp_seeds():
    ulaw = bytes((0xFF - (i * 7) % 128) for i in range(160))
    alaw = bytes((0xD5 ^ (i * 11) % 128) for i in range(160))
    return [
        ("pcmu-20ms", rtp(0, 1, 160, 0x11223344, ulaw, marker=True)),
        ("pcma-20ms", rtp(8, 2, 320, 0x11223344, alaw)),
        ("dtmf-start-5", rtp(101, 3, 480, 0x11223344, bytes([5, 10, 0, 160]), marker=True)),
        ("dtmf-end-hash", rtp(101, 4, 480, 0x11223344, bytes([11, 0x80 | 10, 3, 0x20]))),
        ("csrc-ext-pad", rtp(0, 5, 640, 1, ulaw[:80], csrc=(7, 8), ext=b"\x10\xff\x00\x00", pad=4)),
        ("silence-pcmu", rtp(0, 65535, 0xFFFFFFF0, 9, b"\xff" * 160)),
        ("payload-only", bytes([9, 0x8A, 0x05, 0x00])),
    ]


def yaml_docs():
    out = [
        ("demo", open(os.path.join(ROOT, "services", "config", "demo", "demo.yaml"), "rb").read()),
        ("siptest", open(os.path.join(ROOT, "services", "callgrid", "tests", "sip", "siptest.yaml"), "rb").read()),
    ]
    src = open(os.path.join(ROOT, "services", "config", "tests", "load.rs")).read()
    for i, doc in enumerate(re.findall(r'r#"(.*?)"#', src, re.S)):
        if ":" in doc:
            out.append((f"load-rs-{i}", doc.encode()))
    return out


def http_requests():
    routes = [
        ("GET", "/healthz", ""),
        ("GET", "/api/v1/tenants", "@SUP@"),
        ("GET", "/api/v1/projector", "@ADMIN@"),
        ("GET", "/api/v1/tenants/demo/live", "@SUP@"),
        ("GET", "/api/v1/tenants/demo/live", "@OTHER@"),
        ("GET", "/api/v1/tenants/demo/live/stream", "@SUP@"),
        ("GET", "/api/v1/tenants/demo/calls?from=0&to=99999999999999", "@SUP@"),
        ("GET", "/api/v1/tenants/demo/calls/c1/offers", "@ADMIN@"),
        ("GET", "/api/v1/tenants/demo/agents/alice/states?from=1000", "@AGENT@"),
        ("GET", "/api/v1/tenants/demo/agents/bob/states", "@AGENT@"),
        ("GET", "/api/v1/tenants/demo/intervals?from=0&to=86400000", "@SUP@"),
        ("GET", "/api/v1/session", "@AGENT@"),
        ("GET", "/api/v1/nothing", "@SUP@"),
        # paged history reads: a cursor of a call record (1, 'c', time 0, "c1"), of an agent
        # state (1, 's', 1000, offset 2), and bad limits and cursors
        ("GET", "/api/v1/tenants/demo/calls?limit=2&cursor=AWMAAAAAAAAAAGMx", "@SUP@"),
        ("GET", "/api/v1/tenants/demo/agents/alice/states?limit=1&cursor=AXMAAAAAAAAD6AAAAAAAAAAC", "@AGENT@"),
        ("GET", "/api/v1/tenants/demo/intervals?limit=5001&cursor=garbage", "@SUP@"),
        ("GET", "/api/v1/tenants/demo/calls?limit=2&cursor=AWMAAAAAAAAAAGMx", "@OTHER@"),
    ]
    out = []
    for i, (method, target, cred) in enumerate(routes):
        auth = f"Authorization: Bearer {cred}\r\n" if cred else ""
        out.append((f"route-{i}", f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:7310\r\n{auth}\r\n".encode()))
    out += [
        ("sign-in", b'POST /api/v1/session HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n\r\n{"tenant":"demo","user":"fuzz-sup","password":"not the password"}'),
        ("cookie-live", b"GET /api/v1/tenants/demo/live HTTP/1.1\r\nCookie: theme=dark; callgrid_session=@COOKIE@\r\n\r\n"),
        ("cookie-whoami", b"GET /api/v1/session HTTP/1.1\r\nCookie: callgrid_session=@COOKIE@\r\n\r\n"),
        ("sign-out", b"DELETE /api/v1/session HTTP/1.1\r\nCookie: callgrid_session=@COOKIE@\r\nX-CSRF-Token: @CSRF@\r\n\r\n"),
        ("sign-out-no-csrf", b"DELETE /api/v1/session HTTP/1.1\r\nCookie: callgrid_session=@COOKIE@\r\n\r\n"),
        ("no-credentials", b"GET /api/v1/tenants/demo/calls HTTP/1.1\r\n\r\n"),
        ("bad-scheme", b"GET /api/v1/tenants HTTP/1.1\r\nAuthorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l\r\n\r\n"),
    ]
    return out


def write(target, seeds):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    seen = set()
    for name, data in seeds:
        h = hashlib.sha1(data).hexdigest()[:8]
        if h in seen:
            continue
        seen.add(h)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        with open(os.path.join(d, f"{safe}-{h}"), "wb") as f:
            f.write(data)
    print(f"{target}: {len(seen)} seeds")


def main():
    sip = sipp_messages() + extra_sip()
    write("sip", sip)
    write("sdp", sdp_bodies(sip))
    write("rtp", rtp_seeds())
    write("tenant_yaml", yaml_docs())
    write("http", http_requests())
    return 0


if __name__ == "__main__":
    sys.exit(main())
