"""The file-drop test servers work with fsspec: the loopback sshd (sftp://) and moto (s3://)."""

from __future__ import annotations

import uuid

import fsspec
import pytest

from tests.conftest import S3Server, SftpServer


@pytest.mark.sftp
def test_sftp_server_write_rename_list_read(sftp_server: SftpServer) -> None:
    assert sftp_server.url == (f"sftp://{sftp_server.username}@127.0.0.1:{sftp_server.port}")
    assert sftp_server.key_file.is_file()
    assert sftp_server.root.is_absolute() and sftp_server.root.is_dir()

    fs = fsspec.filesystem("sftp", skip_instance_cache=True, **sftp_server.connect_kwargs)
    try:
        # no chroot: the remote path of the export dir is its local path
        remote_dir = f"{sftp_server.root}/test-{uuid.uuid4().hex[:12]}"
        fs.makedirs(remote_dir, exist_ok=True)
        tmp, final = f"{remote_dir}/drop.csv.part", f"{remote_dir}/drop.csv"
        payload = b"email_sha256,segment\nabc,vip\n"
        with fs.open(tmp, "wb") as f:
            f.write(payload)
        fs.mv(tmp, final)

        assert fs.ls(remote_dir, detail=False) == [final]
        assert fs.info(final)["size"] == len(payload)
        assert fs.cat_file(final) == payload

        local = sftp_server.root / remote_dir.rsplit("/", 1)[1]
        assert sorted(p.name for p in local.iterdir()) == ["drop.csv"]
        assert (local / "drop.csv").read_bytes() == payload

        fs.rm(remote_dir, recursive=True)
        assert not local.exists()
    finally:
        fs.client.close()


def test_s3_server_write_rename_list_read(s3_server: S3Server) -> None:
    import s3fs

    assert s3_server.endpoint_url.startswith("http://127.0.0.1:")
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_server.storage_options)
    assert s3_server.bucket in fs.ls("", detail=False)

    prefix = f"{s3_server.bucket}/test-{uuid.uuid4().hex[:12]}"
    tmp, final = f"{prefix}/drop.csv.part", f"{prefix}/drop.csv"
    payload = b"email_sha256,segment\nabc,vip\n"
    with fs.open(tmp, "wb") as f:
        f.write(payload)
    fs.mv(tmp, final)

    fs.invalidate_cache()
    assert fs.ls(prefix, detail=False) == [final]
    assert fs.info(final)["size"] == len(payload)
    assert fs.cat_file(final) == payload

    # the same through fsspec's generic entry point, as activation code would use it
    with fsspec.open(f"s3://{final}", "rb", **s3_server.storage_options) as f:
        assert f.read() == payload
