"""tickcast.lake._checksum's pure parts: carrying protocol and metadata across commits; the file body."""
import json

from tickcast.lake._checksum import Known, carry, checksum

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
    lines = [_line(commitInfo={"operation": "OPTIMIZE"}),
             _line(add={"path": "a.parquet", "size": 10, "dataChange": True}),
             _line(add={"path": "b.parquet", "size": 5, "dataChange": True}),
             _line(remove={"path": "old.parquet", "size": 40, "dataChange": True})]
    assert carry(k, 4, lines) == Known(4, P1, M1, num_files=3, size_bytes=75)
    # A remove without its size (allowed by the protocol) makes both unknown: delta-rs recounts.
    assert carry(k, 4, [_line(remove={"path": "old.parquet"})]) == Known(4, P1, M1)
    # Unknown stays unknown (the first checksum of a process takes them from delta-rs).
    assert carry(Known(3, P1, M1), 4, lines) == Known(4, P1, M1)


def test_an_add_that_may_replace_a_live_file_makes_the_count_unknown():
    """An `add` of a path already live replaces it: only the live set can tell, so such commits
    are not carried (counting it twice made a checksum Delta's verification refuses)."""
    k = Known(3, P1, M1, num_files=2, size_bytes=100)
    readd = [_line(commitInfo={"operation": "COMPUTE STATS"}), _line(add={"path": "a.parquet", "size": 10})]
    assert carry(k, 4, readd) == Known(4, P1, M1)
    twice = [_line(commitInfo={"operation": "WRITE"}), _line(add={"path": "a.parquet", "size": 10}),
             _line(add={"path": "a.parquet", "size": 10})]
    assert carry(k, 4, twice) == Known(4, P1, M1)
    no_info = [_line(add={"path": "a.parquet", "size": 10})]
    assert carry(k, 4, no_info) == Known(4, P1, M1)
    # A deletion-vector update: remove and add of one path in one commit nets to the same count.
    dv = [_line(commitInfo={"operation": "DELETE"}), _line(remove={"path": "a.parquet", "size": 10}),
          _line(add={"path": "a.parquet", "size": 10})]
    assert carry(k, 4, dv) == Known(4, P1, M1, num_files=2, size_bytes=100)
    # Commits with no `add` (property changes, VACUUM's bookkeeping) carry whatever their operation.
    assert carry(k, 4, [_line(commitInfo={"operation": "VACUUM END"})]) == k.__class__(4, P1, M1, 2, 100)
