"""Download: a real loopback HTTP server (no internet needed) serving zips built by the tests."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ur4rec.data.download import DownloadError, download_dataset, ensure_dataset, needs_download
from ur4rec.data.readers import read_dataset


def make_zip(files: dict[str, bytes], folder: str | None = "ml-100k", extra: dict[str, bytes] | None = None) -> bytes:
    """A deflated zip holding ``files`` under ``folder/`` (at the top when None), plus ``extra`` as given."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        if folder:
            zf.writestr(f"{folder}/", b"")
        for name, content in files.items():
            zf.writestr(f"{folder}/{name}" if folder else name, content)
        for name, content in (extra or {}).items():
            zf.writestr(name, content)
    return buffer.getvalue()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class Server:
    """Routes ``path -> bytes`` on 127.0.0.1; anything else is a 404. ``lie`` routes claim a longer body."""

    def __init__(self):
        self.routes: dict[str, bytes] = {}
        self.lie: set[str] = set()
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                server.requests.append(self.path)
                body = server.routes.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body) + (1000 if self.path in server.lie else 0)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def serve(self, path: str, body: bytes) -> str:
        self.routes[path] = body
        return self.url(path)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    srv = Server()
    yield srv
    srv.close()


@pytest.fixture
def parent(tmp_path) -> Path:
    """The folder that holds the data dir; after a failure it must hold nothing new (no temp leftovers)."""
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------------------- success


def test_download_success_flattens_and_reads(server, parent, tiny_ml100k_files):
    body = make_zip(tiny_ml100k_files)
    url = server.serve("/ml-100k.zip", body)
    target = parent / "ml-100k"

    assert download_dataset(target, url=url, md5=md5(body), timeout=10) == target
    assert listing(target) == ["u.data", "u.item", "u.user"]  # directly in the data dir, not in ml-100k/
    assert (target / "u.data").read_bytes() == tiny_ml100k_files["u.data"]
    assert listing(parent) == ["ml-100k"]  # no temp folder left next to it
    data = read_dataset(target)
    assert data.layout == "ml-100k" and len(data.ratings) == 6
    assert server.requests == ["/ml-100k.zip"]


def test_download_into_existing_empty_folder_with_uppercase_md5(server, parent, tiny_ml100k_files):
    body = make_zip(tiny_ml100k_files)
    target = parent / "ml-100k"
    target.mkdir()
    download_dataset(target, url=server.serve("/a.zip", body), md5=md5(body).upper())
    assert listing(target) == ["u.data", "u.item", "u.user"]
    assert listing(parent) == ["ml-100k"]


def test_download_without_md5_and_without_top_folder(server, parent, tiny_ml100k_files):
    body = make_zip(tiny_ml100k_files, folder=None)
    target = parent / "deep" / "ml-100k"  # missing parents are created
    download_dataset(target, url=server.serve("/flat.zip", body), md5=None)
    assert listing(target) == ["u.data", "u.item", "u.user"]
    assert listing(target.parent) == ["ml-100k"]


def test_macos_metadata_does_not_block_flattening(server, parent, tiny_ml100k_files):
    body = make_zip(tiny_ml100k_files, extra={"__MACOSX/ml-100k/._u.data": b"junk", ".DS_Store": b"junk"})
    target = parent / "ml-100k"
    download_dataset(target, url=server.serve("/mac.zip", body), md5=md5(body))
    assert listing(target) == ["u.data", "u.item", "u.user"]


def test_ensure_dataset_downloads_only_when_needed(server, parent, tiny_ml100k_files):
    body = make_zip(tiny_ml100k_files)
    url = server.serve("/ml-100k.zip", body)
    target = parent / "ml-100k"
    assert ensure_dataset(target, url, md5(body)) == target
    assert listing(target) == ["u.data", "u.item", "u.user"]
    # now non-empty: neither the (now failing) URL nor the server is touched again
    server.routes.clear()
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    assert ensure_dataset(str(target), url, md5(body)) == target
    assert server.requests == ["/ml-100k.zip"]
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before


# ---------------------------------------------------------------------------------------------- never over data


def test_non_empty_folder_is_never_downloaded_over(server, parent, tiny_ml100k_files):
    body = make_zip(tiny_ml100k_files)
    url = server.serve("/ml-100k.zip", body)
    target = parent / "ml-100k"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    with pytest.raises(DownloadError, match="not empty"):
        download_dataset(target, url=url, md5=md5(body))
    assert listing(target) == ["mine.txt"] and (target / "mine.txt").read_text() == "keep me"
    assert ensure_dataset(target, url, md5(body)) == target
    assert listing(target) == ["mine.txt"]
    assert server.requests == []
    assert listing(parent) == ["ml-100k"]


def test_a_file_in_the_way_is_not_replaced(server, parent, tiny_ml100k_files):
    body = make_zip(tiny_ml100k_files)
    target = parent / "ml-100k"
    target.write_text("a file")
    with pytest.raises(DownloadError, match="not a folder"):
        download_dataset(target, url=server.serve("/a.zip", body), md5=md5(body))
    assert target.read_text() == "a file"
    assert server.requests == []


def test_needs_download(tmp_path):
    assert needs_download(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    assert needs_download(tmp_path / "empty")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert not needs_download(tmp_path / "full")


# ---------------------------------------------------------------------------------------------- failures


def assert_untouched(parent: Path, target: Path, existed: bool) -> None:
    if existed:
        assert target.is_dir() and listing(target) == []
        assert listing(parent) == [target.name]
    else:
        assert not target.exists()
        assert listing(parent) == []


@pytest.mark.parametrize("existed", [False, True])
def test_wrong_checksum_leaves_everything_untouched(server, parent, tiny_ml100k_files, existed):
    body = make_zip(tiny_ml100k_files)
    target = parent / "ml-100k"
    if existed:
        target.mkdir()
    with pytest.raises(DownloadError, match="md5") as exc:
        download_dataset(target, url=server.serve("/ml-100k.zip", body), md5="0" * 32)
    assert md5(body) in str(exc.value)
    assert_untouched(parent, target, existed)


def _truncated(body: bytes) -> bytes:
    return body[: len(body) // 2]


def _garbled(body: bytes) -> bytes:
    """Flip bytes inside the compressed data of the first real member (u.data), headers intact."""
    start = body.index(b"u.data") + len("u.data")  # right after the first local header's name
    garbled = bytearray(body)
    for i in range(start + 2, start + 12):
        garbled[i] ^= 0xFF
    return bytes(garbled)


def _not_a_zip(body: bytes) -> bytes:
    return b"<html>Service unavailable</html>"


@pytest.mark.parametrize("corrupt", [_truncated, _garbled, _not_a_zip], ids=["truncated", "garbled", "not-a-zip"])
@pytest.mark.parametrize("existed", [False, True])
def test_corrupted_zip_writes_nothing(server, parent, tiny_ml100k_files, corrupt, existed):
    body = corrupt(make_zip(tiny_ml100k_files))
    target = parent / "ml-100k"
    if existed:
        target.mkdir()
    # the md5 matches the corrupted bytes, so it is the unpacking that must fail
    with pytest.raises(DownloadError, match="zip"):
        download_dataset(target, url=server.serve("/bad.zip", body), md5=md5(body))
    assert_untouched(parent, target, existed)


def test_http_404(server, parent):
    target = parent / "ml-100k"
    with pytest.raises(DownloadError, match="404"):
        download_dataset(target, url=server.url("/missing.zip"), md5=None)
    assert_untouched(parent, target, existed=False)
    with pytest.raises(DownloadError, match="404"):
        ensure_dataset(target, server.url("/missing.zip"), None)
    assert_untouched(parent, target, existed=False)


def test_connection_cut_short(server, parent, tiny_ml100k_files):
    body = make_zip(tiny_ml100k_files)
    url = server.serve("/short.zip", body)
    server.lie.add("/short.zip")  # Content-Length promises 1000 more bytes than are sent
    target = parent / "ml-100k"
    with pytest.raises(DownloadError, match="cannot download"):
        download_dataset(target, url=url, md5=None, timeout=10)
    assert_untouched(parent, target, existed=False)


def test_nothing_listening_and_bad_url(parent):
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = parent / "ml-100k"
    with pytest.raises(DownloadError, match="cannot download"):
        download_dataset(target, url=f"http://127.0.0.1:{port}/x.zip", md5=None, timeout=5)
    with pytest.raises(DownloadError, match="cannot download"):
        download_dataset(target, url="not a url", md5=None)
    assert_untouched(parent, target, existed=False)


def test_archive_without_a_dataset_is_not_installed(server, parent):
    body = make_zip({"README.txt": b"nothing useful"})
    target = parent / "ml-100k"
    with pytest.raises(DownloadError, match="no known dataset layout"):
        download_dataset(target, url=server.serve("/other.zip", body), md5=md5(body))
    assert_untouched(parent, target, existed=False)


def test_empty_archive(server, parent):
    body = make_zip({}, folder=None)
    target = parent / "ml-100k"
    with pytest.raises(DownloadError, match="empty"):
        download_dataset(target, url=server.serve("/empty.zip", body), md5=None)
    assert_untouched(parent, target, existed=False)


def test_unsafe_member_path_is_refused(server, tmp_path, parent, tiny_ml100k_files):
    body = make_zip(tiny_ml100k_files, extra={"../escaped.txt": b"gotcha"})
    target = parent / "ml-100k"
    with pytest.raises(DownloadError, match="unsafe path"):
        download_dataset(target, url=server.serve("/evil.zip", body), md5=md5(body))
    assert_untouched(parent, target, existed=False)
    assert not (tmp_path / "escaped.txt").exists()
