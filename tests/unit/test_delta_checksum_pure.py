"""jobs.delta_checksum's pure parts: carrying protocol and metadata across commits; the file body."""
import json

from jobs.delta_checksum import Known, carry, checksum

P1 = {"minReaderVersion": 1, "minWriterVersion": 2}
M1 = {"id": "t", "format": {"provider": "parquet", "options": {}}, "schemaString": "{}", "partitionColumns": [],
      "configuration": {}, "createdTime": 1}


def _line(**action) -> str:
    return json.dumps(action)


def test_carry_keeps_what_a_commit_does_not_change_and_takes_what_it_does():
    k = Known(3, P1, M1)
    plain = [_line(commitInfo={"operation": "WRITE"}), _line(add={"path": "a.parquet", "size": 10}), ""]
    assert carry(k, 4, plain) == Known(4, P1, M1)
    m2 = dict(M1, configuration={"delta.checkpointInterval": "10"})
    p2 = {"minReaderVersion": 1, "minWriterVersion": 4}
    assert carry(k, 4, [_line(metaData=m2)]) == Known(4, P1, m2)
    assert carry(k, 4, [_line(protocol=p2), _line(metaData=m2)]) == Known(4, p2, m2)


def test_checksum_body_has_the_required_fields():
    body = checksum(Known(7, P1, M1), num_files=3, size_bytes=1234)
    assert body == {"tableSizeBytes": 1234, "numFiles": 3, "numMetadata": 1, "numProtocol": 1,
                    "metadata": M1, "protocol": P1}


def test_carry_counts_files_and_bytes_through_adds_and_removes():
    k = Known(3, P1, M1, num_files=2, size_bytes=100)
    lines = [_line(add={"path": "a.parquet", "size": 10, "dataChange": True}),
             _line(add={"path": "b.parquet", "size": 5, "dataChange": True}),
             _line(remove={"path": "old.parquet", "size": 40, "dataChange": True})]
    assert carry(k, 4, lines) == Known(4, P1, M1, num_files=3, size_bytes=75)
    # A remove without its size (allowed by the protocol) makes both unknown: delta-rs recounts.
    assert carry(k, 4, [_line(remove={"path": "old.parquet"})]) == Known(4, P1, M1)
    # Unknown stays unknown (the first checksum of a process takes them from delta-rs).
    assert carry(Known(3, P1, M1), 4, lines) == Known(4, P1, M1)
