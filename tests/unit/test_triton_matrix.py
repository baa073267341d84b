# SPDX-License-Identifier: Apache-2.0
"""The compatibility matrix data file: complete, sourced, self-consistent, never guessing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.triton_compat import cuda_family, load_matrix, toolkit_min_driver
from ansible.module_utils.triton_versions import version_at_least, version_tuple

MATRIX_PATH = Path(__file__).resolve().parents[2] / "roles" / "triton_platform" / "files" / "triton_matrix.yml"
# Fields that come from the release notes and may be unpublished.
NOTE_FIELDS = ("cuda_version", "release_note_driver", "forward_compat_branches")


@pytest.fixture(scope="module")
def matrix() -> dict[str, Any]:
    return load_matrix(str(MATRIX_PATH))


def months(first: tuple[int, int], last: tuple[int, int]) -> list[str]:
    year, month = first
    found = []
    while (year, month) <= last:
        found.append(f"{year:02d}.{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


EXPECTED_RELEASES = months((23, 1), (26, 8))


def expected_server_version(release: str) -> str:
    """docs/upstream-facts.md, "Releases and versions".

    2.NN.0, NN = 30 for 23.01 +1 a month; 25.07 is 2.59.1, so NN lags by one after it.
    """
    index = EXPECTED_RELEASES.index(release)
    if release == "25.07":
        return "2.59.1"
    return f"2.{30 + index - (1 if release > '25.07' else 0)}.0"


def test_matrix_loads_with_version_1(matrix):
    assert matrix["matrix_version"] == 1


def test_every_release_from_2301_to_2608_in_order(matrix):
    assert [row["release"] for row in matrix["releases"]] == EXPECTED_RELEASES


@pytest.mark.parametrize("release", EXPECTED_RELEASES)
def test_server_version_follows_the_rule(matrix, release):
    row = next(r for r in matrix["releases"] if r["release"] == release)
    assert row["server_version"] == expected_server_version(release)
    assert row["container_tag"] == f"{release}-py3"


def test_server_version_anchors(matrix):
    by_release = {row["release"]: row["server_version"] for row in matrix["releases"]}
    assert (by_release["24.10"], by_release["25.06"], by_release["25.07"], by_release["25.08"]) == (
        "2.51.0",
        "2.59.0",
        "2.59.1",
        "2.60.0",
    )
    assert by_release["26.08"] == "2.72.0"


def test_every_row_has_a_source(matrix):
    for row in matrix["releases"]:
        assert isinstance(row["source"], str) and len(row["source"]) > 20, row["release"]


def test_short_source_names_resolve(matrix):
    named = [*matrix["cuda_driver"]["families"], *matrix["cuda_driver"]["toolkits"]]
    named += [matrix["datacenter_gpus"], matrix["wheel"], matrix["container"], matrix["source_build"]]
    for entry in named:
        assert entry["source"] in matrix["sources"], entry
    for group in matrix["jetson"]["jetpacks"]:
        assert group["source"].strip()
        for artifact in group.get("artifacts", []):
            assert artifact["source"].strip()


@pytest.mark.parametrize("release", EXPECTED_RELEASES)
def test_unverified_fields_are_null_and_flagged(matrix, release):
    row = next(r for r in matrix["releases"] if r["release"] == release)
    nulls = {field for field in NOTE_FIELDS if row[field] is None}
    assert set(row["unverified_fields"]) == nulls
    assert row["unverified"] is bool(nulls)


def test_rows_the_facts_mark_unverified(matrix):
    unverified = {row["release"] for row in matrix["releases"] if row["cuda_version"] is None}
    # 23.09, 23.11, 24.02 and 24.07 come from their release notes (rel-YY-MM.html, "Driver Requirements").
    expected = {"23.01", "23.02", "24.03", "24.09", "24.11", "25.02", "25.05"}
    expected |= {"25.07", "25.09", *months((25, 11), (26, 7))}
    assert unverified == expected


@pytest.mark.parametrize("release", EXPECTED_RELEASES)
def test_ubuntu_glibc_and_min_cc_rules(matrix, release):
    row = next(r for r in matrix["releases"] if r["release"] == release)
    server = version_tuple(row["server_version"])
    ubuntu = "20.04" if server <= (2, 33, 0) else "22.04" if server <= (2, 51, 0) else "24.04"
    assert row["ubuntu"] == ubuntu
    assert row["glibc"] == matrix["ubuntu_glibc"][ubuntu]
    assert row["min_compute_capability"] == ("6.0" if release <= "24.12" else "7.5")


def test_known_cuda_versions_map_to_a_driver(matrix):
    for row in matrix["releases"]:
        if row["cuda_version"]:
            family = cuda_family(matrix, row["cuda_version"])
            assert family is not None, row["release"]
            exact = toolkit_min_driver(matrix, row["cuda_version"])
            assert exact is not None, row["release"]
            assert version_at_least(exact, family["min_driver"]), row["release"]


def test_derived_driver_corrects_copy_pasted_notes(matrix):
    """docs/upstream-facts.md, "CUDA and driver".

    25.01 (CUDA 12.8) prints 560 but needs 570.26; CUDA 13 releases print 575 but need >= 580.
    """
    rows = {row["release"]: row for row in matrix["releases"]}
    assert rows["25.01"]["release_note_driver"] == "560"
    assert toolkit_min_driver(matrix, rows["25.01"]["cuda_version"]) == "570.26"
    for release in ("25.08", "25.10"):
        assert rows[release]["release_note_driver"] == "575"
        assert version_at_least(toolkit_min_driver(matrix, rows[release]["cuda_version"]), "580")


def test_toolkit_table_is_unique_and_descending(matrix):
    keys = [version_tuple(entry["cuda"]) for entry in matrix["cuda_driver"]["toolkits"]]
    assert keys == sorted(set(keys), reverse=True)


def test_family_minimums(matrix):
    families = {f["cuda_major"]: f for f in matrix["cuda_driver"]["families"]}
    assert {major: f["min_driver"] for major, f in families.items()} == {13: "580", 12: "525", 11: "450.80.02"}
    assert families[13]["forward_compat_verified"] is False


def test_datacenter_patterns_compile(matrix):
    for pattern in matrix["datacenter_gpus"]["patterns"]:
        re.compile(pattern)


def test_jetson_deliverables(matrix):
    groups = {group["jetpack_major"]: group for group in matrix["jetson"]["jetpacks"]}
    assert sorted(groups) == [4, 5, 6, 7]
    assert groups[4]["artifacts"][-1]["name"] == "tritonserver2.19.0-jetpack4.6.1.tgz"
    assert groups[5]["artifacts"][-1]["name"] == "tritonserver2.35.0-jetpack5.1.2-update-2.tgz"
    assert (groups[6]["igpu"]["first_release"], groups[6]["igpu"]["last_release"]) == ("23.11", "26.02")
    assert groups[6]["igpu"]["container_tag_suffix"] == "-igpu"
    assert "sbsa" in groups[7]
    assert "artifacts" not in groups[6] and "artifacts" not in groups[7]


def test_jetson_artifact_names_carry_their_version(matrix):
    for group in matrix["jetson"]["jetpacks"]:
        for artifact in group.get("artifacts", []):
            assert f"tritonserver{artifact['server_version']}-jetpack{artifact['jetpack']}" in artifact["name"]
            assert version_at_least(artifact["jetpack"], artifact["min_jetpack"])
        for server, name in (group.get("igpu") or {}).get("tarballs", {}).items():
            assert re.fullmatch(rf"tritonserver-?{re.escape(server)}-igpu\.(tar|tar\.gz|tgz)", name)


def test_igpu_range_inside_release_table_and_glibc_cut(matrix):
    """igpu tarballs after 24.10 are Ubuntu 24.04 builds: glibc 2.39 > JetPack 6's 2.35 (#8367)."""
    rows = {row["release"]: row for row in matrix["releases"]}
    group = next(g for g in matrix["jetson"]["jetpacks"] if g["jetpack_major"] == 6)
    assert group["igpu"]["first_release"] in rows and group["igpu"]["last_release"] in rows
    assert rows["26.02"]["server_version"] == "2.66.0"
    assert rows["24.10"]["glibc"] == matrix["ubuntu_glibc"][group["ubuntu"]]
    assert rows["24.11"]["glibc"] == "2.39"
