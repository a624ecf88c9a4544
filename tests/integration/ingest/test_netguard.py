"""The SSRF guard: which addresses and URLs are refused, and that a request connects to
the address that was checked (Host header and TLS name kept), never a second answer."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from mediamon.ingest import netguard
from mediamon.ingest.fetch import fetch
from mediamon.ingest.session import make_session


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("168.63.129.16", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not globally routable"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback (IPv4 127.0.0.1 inside IPv6)"),
        ("::ffff:10.0.0.1", "private (IPv4 10.0.0.1 inside IPv6)"),
        ("64:ff9b::a9fe:a9fe", "cloud metadata (IPv4 169.254.169.254 inside IPv6)"),
        ("2002:7f00:1::", "loopback (IPv4 127.0.0.1 inside IPv6)"),
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_classes(address: str, reason: str | None) -> None:
    assert netguard.blocked_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "scheme 'file' is not http or https"),
        ("gopher://127.0.0.1:70/", "scheme 'gopher'"),
        ("ftp://example.com/feed", "scheme 'ftp'"),
        ("javascript:alert(1)", "scheme 'javascript'"),
        ("//example.com/no-scheme", "scheme '(none)'"),
        ("http:///no-host", "URL has no host"),
        ("http://../p", "URL has no host"),  # before: fetched as "http:///p", one key for all
        ("https://.", "URL has no host"),
        # an IPvFuture literal, canonicalized without its brackets as another host
        ("http://[v1.example.com]/p", "a bracketed host that is not IPv6"),
        ("http://example.com:99999/", "invalid URL"),
        ("http://example.com/" + "a" * 2100, "URL longer than 2048 characters"),
    ],
)
def test_bad_urls_are_refused_before_any_lookup(url: str, message: str) -> None:
    with pytest.raises(netguard.BlockedURL, match="^blocked: ") as error:
        netguard.vet(url)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://2130706433/",  # 127.0.0.1 as one number
        "http://0x7f.1/",  # hex and short forms
        "http://127.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1:8080/admin",
    ],
)
def test_private_addresses_in_any_spelling_are_refused(url: str) -> None:
    refusal = "never fetched" if "169.254" in url else "the source does not allow private"
    with pytest.raises(netguard.BlockedURL, match=refusal):
        netguard.vet(url)
    if "169.254.169.254" in url:  # metadata: refused whatever the allowance
        with pytest.raises(netguard.BlockedURL, match="never fetched, whatever"):
            netguard.vet(url, private_ok={netguard.url_host_key(url)})
    else:
        assert netguard.vet(url, private_ok={netguard.url_host_key(url)}).addresses


FakeDNS = Callable[[dict[str, list[str]]], list[str]]


@pytest.fixture()
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDNS]:
    """Answer chosen names (``*.test``) from a table; the table may hold several answers
    per name, handed out one per lookup (DNS rebinding). Returns the names looked up."""
    real = socket.getaddrinfo
    asked: list[str] = []
    table: dict[str, list[str]] = {}

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in table:
            asked.append(name)
            answers = table[name]
            address = answers.pop(0) if len(answers) > 1 else answers[0]
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (address, port or 0))]
        if name.endswith(".test"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    def configure(entries: dict[str, list[str]]) -> list[str]:
        table.update(entries)
        return asked

    yield configure


def test_names_resolving_to_private_addresses_are_refused(fake_dns: FakeDNS) -> None:
    fake_dns(
        {
            "metadata.test": ["169.254.169.254"],
            "intranet.test": ["10.20.30.40"],
            "public.test": ["93.184.215.14"],
        }
    )
    with pytest.raises(netguard.BlockedURL) as error:
        netguard.vet("http://metadata.test/latest")
    assert str(error.value) == (
        "blocked: metadata.test resolves to 169.254.169.254, which is cloud metadata"
        " (never fetched, whatever the configuration)"
    )
    with pytest.raises(netguard.BlockedURL, match="10.20.30.40, which is private"):
        netguard.vet("https://intranet.test/", literal_ok=True)  # a name is always checked
    assert netguard.vet("http://public.test/").addresses == ("93.184.215.14",)
    assert netguard.vet("http://127.0.0.1:8080/feed", literal_ok=True).addresses == ("127.0.0.1",)
    with pytest.raises(netguard.ResolutionFailed, match="^DNS lookup failed: nowhere.test"):
        netguard.vet("http://nowhere.test/")


def test_request_connects_to_the_vetted_address_keeping_the_host_header(
    httpserver: HTTPServer, fake_dns: FakeDNS
) -> None:
    """The name resolves once, to loopback; a second lookup would answer an address
    nobody listens on (DNS rebinding). The fetch succeeds only if the connection goes to
    the address that was checked, with the name in the Host header."""
    asked = fake_dns({"news.test": ["127.0.0.1", "10.255.255.1"]})
    hosts: list[str] = []

    def record(request: Request) -> Response:
        hosts.append(request.headers.get("Host", ""))
        return Response("<rss/>", content_type="application/rss+xml")

    httpserver.expect_request("/feed.xml").respond_with_handler(record)
    with make_session("t", retries=0) as session:
        result = fetch(
            session,
            f"http://news.test:{httpserver.port}/feed.xml",
            allow_private_network=True,
            timeout=(0.5, 2.0),
        )
    assert result.ok, result.error
    assert hosts == [f"news.test:{httpserver.port}"]
    assert asked == ["news.test"]


def test_international_host_names_are_pinned_too(httpserver: HTTPServer, fake_dns: FakeDNS) -> None:
    import idna

    ascii_name = idna.encode("新闻.test", uts46=True).decode()
    asked = fake_dns({ascii_name: ["127.0.0.1"]})
    httpserver.expect_request("/").respond_with_data("好")
    with make_session("t", retries=0) as session:
        result = fetch(session, f"http://新闻.test:{httpserver.port}/", allow_private_network=True)
    assert result.ok and result.content.decode() == "好"
    assert asked == [ascii_name]
    assert netguard.vet(
        f"http://新闻.test:{httpserver.port}/",
        private_ok={f"{ascii_name}:{httpserver.port}"},
    ).host == (ascii_name)


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_uses_the_host_name_for_sni_and_certificate_checks(
    tmp_path: Path, fake_dns: FakeDNS
) -> None:
    fake_dns({"secure.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    cert, key = _certificate(tmp_path, "secure.test")
    server_names: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def remember_name(sock: Any, name: str | None, ctx: Any) -> None:
        server_names.append(name)

    context.sni_callback = remember_name
    server = HTTPServer(host="127.0.0.1", ssl_context=context)
    server.expect_request("/feed.xml").respond_with_data("<rss/>")
    server.start()
    try:
        with make_session("t", retries=0) as session:
            session.verify = str(cert)
            good = fetch(
                session, f"https://secure.test:{server.port}/feed.xml", allow_private_network=True
            )
            wrong_name = fetch(
                session, f"https://other.test:{server.port}/feed.xml", allow_private_network=True
            )
    finally:
        server.clear()
        server.stop()
    assert good.ok and good.content == b"<rss/>", good.error
    assert server_names[0] == "secure.test"
    assert wrong_name.error and wrong_name.error.startswith("TLS error")


def test_the_session_guards_requests_made_without_fetch(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("secret")
    with make_session("t", retries=0) as session:
        with pytest.raises(netguard.BlockedURL, match="127.0.0.1 is loopback"):
            session.get(f"http://127.0.0.1:{httpserver.port}/", timeout=2)
        session.proxies = {"http": "http://proxy.example:3128"}
        result = fetch(session, httpserver.url_for("/"), allow_private_network=True)
    assert result.error == "blocked: proxies are not supported by the SSRF guard"
    assert httpserver.log == []


def test_plain_requests_session_is_not_accepted() -> None:
    with pytest.raises(TypeError):
        fetch(requests.Session(), "http://example.com/")


@pytest.mark.parametrize(
    "host", ["169.254.169.254", "100.100.100.200", "168.63.129.16", "[fd00:ec2::254]"]
)
def test_metadata_addresses_are_refused_whatever_the_configuration(host: str) -> None:
    """Cloud metadata is never fetched: not as the operator's own URL, not as a host the
    source allows (issue 11, finding 1)."""
    url = f"http://{host}/latest/meta-data/"
    with pytest.raises(netguard.BlockedURL, match="never fetched, whatever the configuration"):
        netguard.vet(url, literal_ok=True)
    with pytest.raises(netguard.BlockedURL, match="never fetched, whatever the configuration"):
        netguard.vet(url, private_ok={netguard.url_host_key(url)}, literal_ok=True)


def test_private_allowance_is_one_host_and_port_as_spelled(fake_dns: FakeDNS) -> None:
    fake_dns({"intranet.test": ["10.20.30.40"], "imds.test": ["169.254.169.254"]})
    allowed = {"127.0.0.1:8080", "intranet.test:80", "imds.test:80"}
    assert netguard.vet("http://127.0.0.1:8080/feed", private_ok=allowed).addresses
    assert netguard.vet("http://intranet.test/", private_ok=allowed).addresses == ("10.20.30.40",)
    for url in (
        "http://127.0.0.1:8081/",  # another port
        "http://127.0.0.2:8080/",  # another loopback address
        "http://localhost:8080/",  # another spelling
        "http://2130706433:8080/",
        "http://0x7f000001:8080/",
        "http://[::1]:8080/",
        "http://intranet.test:8080/",
    ):
        with pytest.raises(netguard.BlockedURL, match="only 127.0.0.1:8080, imds.test:80"):
            netguard.vet(url, private_ok=allowed)
    with pytest.raises(netguard.BlockedURL, match="cloud metadata"):
        netguard.vet("http://imds.test/", private_ok=allowed)
