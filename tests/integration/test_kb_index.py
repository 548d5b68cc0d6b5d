"""The vector-index contract, run against every adapter: in-process (in memory and on
disk) and Pinecone (the real ``pinecone`` client against a local data-plane server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kb.index import LocalVectorIndex, VectorIndex, VectorRecord
from kb.pinecone_index import PineconeIndex
from tests.fakes.pinecone_http import PineconeDataPlaneServer

DIM = 4


def rec(vid: str, values: list[float], **metadata: object) -> VectorRecord:
    return VectorRecord(vid, values, dict(metadata))


class VectorIndexContract:
    """Subclasses provide ``index`` (a fresh, empty index per test)."""

    @pytest.fixture
    def index(self) -> Iterator[VectorIndex]:
        raise NotImplementedError

    def test_query_returns_nearest_first_with_cosine_scores(self, index: VectorIndex) -> None:
        assert (
            index.upsert(
                "t1", [rec("a", [1, 0, 0, 0]), rec("b", [1, 1, 0, 0]), rec("c", [0, 0, 1, 0])]
            )
            == 3
        )
        matches = index.query("t1", [2, 0, 0, 0], top_k=2)
        assert [m.id for m in matches] == ["a", "b"]
        assert matches[0].score == pytest.approx(1.0, abs=1e-6)
        assert matches[1].score == pytest.approx(0.7071, abs=1e-3)

    def test_metadata_comes_back_and_upsert_overwrites_by_id(self, index: VectorIndex) -> None:
        index.upsert("t1", [rec("a", [1, 0, 0, 0], status="current", version=1)])
        index.upsert("t1", [rec("a", [0, 1, 0, 0], status="superseded", version=2)])
        (match,) = index.query("t1", [0, 1, 0, 0], top_k=5)
        assert match.id == "a"
        assert match.score == pytest.approx(1.0, abs=1e-6)
        assert match.metadata == {"status": "superseded", "version": 2}
        assert index.namespaces() == {"t1": 1}

    def test_filters(self, index: VectorIndex) -> None:
        index.upsert(
            "t1",
            [
                rec("a", [1, 0, 0, 0], status="current", area="API", version=2),
                rec("b", [1, 0.1, 0, 0], status="superseded", area="API", version=1),
                rec("c", [1, 0.2, 0, 0], status="current", area="BILLING", version=3),
            ],
        )
        q = [1, 0, 0, 0]

        def ids(flt: dict[str, object]) -> list[str]:
            return [m.id for m in index.query("t1", q, top_k=10, filter=flt)]

        assert ids({"status": "current"}) == ["a", "c"]
        assert ids({"status": {"$eq": "current"}, "area": "API"}) == ["a"]
        assert ids({"area": {"$in": ["BILLING"]}}) == ["c"]
        assert ids({"status": {"$ne": "current"}}) == ["b"]
        assert ids({"version": {"$gte": 2}}) == ["a", "c"]
        assert ids({"$or": [{"area": "BILLING"}, {"version": 1}]}) == ["b", "c"]
        assert ids({"status": "missing"}) == []

    def test_namespaces_are_isolated(self, index: VectorIndex) -> None:
        index.upsert("tenant-a", [rec("x", [1, 0, 0, 0])])
        index.upsert("tenant-b", [rec("x", [0, 1, 0, 0]), rec("y", [0, 0, 1, 0])])
        assert index.namespaces() == {"tenant-a": 1, "tenant-b": 2}
        (only,) = index.query("tenant-a", [0, 1, 0, 0], top_k=10)
        assert only.id == "x"
        assert only.score == pytest.approx(0.0, abs=1e-6)
        assert index.query("tenant-c", [1, 0, 0, 0], top_k=3) == []

    def test_delete(self, index: VectorIndex) -> None:
        index.upsert("t1", [rec("a", [1, 0, 0, 0]), rec("b", [0, 1, 0, 0]), rec("c", [0, 0, 1, 0])])
        index.delete("t1", ["a", "unknown"])
        assert sorted(m.id for m in index.query("t1", [1, 1, 1, 0], top_k=10)) == ["b", "c"]
        index.delete("t1", ["b", "c"])
        assert index.query("t1", [1, 0, 0, 0], top_k=3) == []
        assert "t1" not in index.namespaces()

    def test_top_k_limits_and_many_vectors(self, index: VectorIndex) -> None:
        records = [rec(f"v{n:03d}", [1, n / 250, 0, 0], n=n) for n in range(250)]
        assert index.upsert("t1", records) == 250
        matches = index.query("t1", [1, 0, 0, 0], top_k=7)
        assert [m.id for m in matches] == [f"v{n:03d}" for n in range(7)]
        assert index.namespaces() == {"t1": 250}


class TestLocalIndexInMemory(VectorIndexContract):
    @pytest.fixture
    def index(self) -> Iterator[VectorIndex]:
        yield LocalVectorIndex()


class TestLocalIndexOnDisk(VectorIndexContract):
    @pytest.fixture
    def index(self, tmp_path: Path) -> Iterator[VectorIndex]:
        yield LocalVectorIndex(tmp_path / "index")

    def test_survives_a_restart(self, tmp_path: Path) -> None:
        LocalVectorIndex(tmp_path / "i").upsert("t/1", [rec("a", [1, 0, 0, 0], k="v")])
        reopened = LocalVectorIndex(tmp_path / "i")
        assert reopened.namespaces() == {"t/1": 1}
        assert reopened.query("t/1", [1, 0, 0, 0], top_k=1)[0].metadata == {"k": "v"}


class TestPineconeIndex(VectorIndexContract):
    @pytest.fixture
    def server(self) -> Iterator[PineconeDataPlaneServer]:
        with PineconeDataPlaneServer(dimension=DIM, api_key="pc-test") as srv:
            yield srv

    @pytest.fixture
    def index(self, server: PineconeDataPlaneServer) -> Iterator[VectorIndex]:
        idx = PineconeIndex(server.host, "pc-test")
        yield idx
        idx.close()

    def test_speaks_the_data_plane_protocol(
        self, server: PineconeDataPlaneServer, index: VectorIndex
    ) -> None:
        index.upsert("t1", [rec("a", [1, 0, 0, 0], status="current")])
        index.query("t1", [1, 0, 0, 0], top_k=1, filter={"status": "current"})
        index.delete("t1", ["a"])
        calls = [(method, path) for method, path, _ in server.requests]
        assert calls == [
            ("POST", "/vectors/upsert"),
            ("POST", "/query"),
            ("POST", "/vectors/delete"),
        ]
        _, _, query = server.requests[1]
        assert query == {
            "topK": 1,
            "includeValues": False,
            "includeMetadata": True,
            "namespace": "t1",
            "vector": [1.0, 0.0, 0.0, 0.0],
            "filter": {"status": "current"},
        }
        assert set(server.api_versions) == {"2026-07"}

    def test_wrong_api_key_is_refused(self, server: PineconeDataPlaneServer) -> None:
        from pinecone.errors import UnauthorizedError

        with pytest.raises(UnauthorizedError):
            PineconeIndex(server.host, "wrong").namespaces()

    def test_wrong_dimension_is_refused(self, index: VectorIndex) -> None:
        from pinecone.errors import PineconeError

        with pytest.raises(PineconeError, match="dimension"):
            index.upsert("t1", [rec("a", [1, 0, 0])])
