"""The processing table split into shard ConfigMaps, and read back by the processor."""

from __future__ import annotations

import os
from pathlib import Path

from connectors.api.processing import (
    Processed,
    ProcessingTable,
    configmap_name,
    shard_file,
    shard_number,
)
from connectors.api.shards import SHARDS, shard_of
from connectors.planning.config import OperatorConfig
from connectors.planning.processor import processing_configmaps, processor_deployment
from connectors.processor.main import TableFile


def entry(name: str) -> Processed:
    return Processed(connection=name, home=name, data_type="Conversions")


def test_ten_thousand_connections_fit_in_shards_far_below_the_limit() -> None:
    table = ProcessingTable(connections=[entry(f"partner-{i:05d}") for i in range(10_000)])
    owners = [(f"partner-{i:05d}", f"uid-{i}") for i in range(10_000)]
    configmaps = processing_configmaps("ns", table, owners)
    assert sorted(configmaps) == list(range(SHARDS))
    sizes = [len(c["data"]["processing.json"]) for c in configmaps.values()]
    assert max(sizes) < 256 * 1024, max(sizes)
    names = [c["metadata"]["name"] for c in configmaps.values()]
    assert [shard_number(name) for name in names] == list(range(SHARDS))
    back = [e.connection for c in configmaps.values()
            for e in ProcessingTable.parse(c["data"]["processing.json"]).connections]
    assert sorted(back) == sorted(e.connection for e in table.connections)
    # A bounded sample owns them, the same for every shard.
    assert {len(c["metadata"]["ownerReferences"]) for c in configmaps.values()} == {16}
    shard = shard_of("partner-00042")
    assert "partner-00042" in configmaps[shard]["data"]["processing.json"]


def test_the_processor_pod_mounts_every_shard_as_optional() -> None:
    deployment = processor_deployment("ns", OperatorConfig(), [("a", "uid-a")])
    [volume] = [v for v in deployment["spec"]["template"]["spec"]["volumes"]
                if v["name"] == "table"]
    sources = volume["projected"]["sources"]
    assert [s["configMap"]["name"] for s in sources] == [configmap_name(i) for i in range(SHARDS)]
    assert all(s["configMap"]["optional"] for s in sources)


def test_the_processor_reads_a_folder_of_shards_as_one_table(tmp_path: Path) -> None:
    first, second = tmp_path / "..v1", tmp_path / "..v2"
    first.mkdir()
    second.mkdir()
    (first / shard_file(2)).write_text(ProcessingTable(connections=[entry("a")]).render())
    (second / shard_file(2)).write_text(ProcessingTable(connections=[entry("a")]).render())
    (second / shard_file(9)).write_text(ProcessingTable(connections=[entry("b")]).render())
    (tmp_path / "..data").symlink_to(first.name)
    for shard in (2, 9):
        (tmp_path / shard_file(shard)).symlink_to(f"..data/{shard_file(shard)}")
    table = TableFile(tmp_path)
    table.reload()
    assert sorted(table.connections) == ["a"]
    (tmp_path / "..tmp").symlink_to(second.name)
    os.replace(tmp_path / "..tmp", tmp_path / "..data")
    table.reload()
    assert sorted(table.connections) == ["a", "b"]
    (second / shard_file(9)).write_text("{broken")
    table.reload()
    assert sorted(table.connections) == ["a", "b"]  # the last good table stays
