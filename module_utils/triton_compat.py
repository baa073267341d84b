# SPDX-License-Identifier: Apache-2.0
"""Plan a Triton install for one host: its ``triton_host`` facts against the compatibility matrix.

The matrix (``roles/triton_platform/files/triton_matrix.yml``) is controller-side data; every
rule here reads it rather than hard-coding release numbers. ``build_plan`` returns the
``triton_plan`` dict of docs/architecture.md or raises ``CompatError`` whose message has four
parts: what is wrong, what was found where, what is supported, what to do.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from ansible.module_utils.triton_container_engine import SUPPORTED_ENGINES
from ansible.module_utils.triton_host import gpu_compute_capability
from ansible.module_utils.triton_runtime import CONTAINER_GPU_MODES, JETSON_POOL_BYTES, runtime_section
from ansible.module_utils.triton_versions import parse_version_prefix, version_at_least, version_tuple

MATRIX_VERSION = 1
METHODS = ("wheel", "tarball", "container", "source")
ENABLE_GPU_CHOICES = ("auto", "true", "false")
GPU_BUILD_CHOICES = ("auto", "true", "false")

# Unquoted YAML turns 24.10 into the float 24.1; Ansible then hands the module "24.1".
_FLOAT_RELEASE_RE = re.compile(r"\d{2}\.\d")


class CompatError(Exception):
    """The host cannot run the requested plan; ``str()`` is the four-part user message."""

    def __init__(self, wrong: str, found: str, supported: str, todo: str) -> None:
        self.wrong = wrong
        self.found = found
        self.supported = supported
        self.todo = todo
        super().__init__(f"{wrong}. Found: {found}. Supported: {supported}. To fix: {todo}.")


def load_matrix(path: str) -> dict[str, Any]:
    """Read the YAML matrix at ``path`` and check its ``matrix_version``.

    Returns the parsed dict. Raises CompatError when the file is unreadable, not YAML, or of
    another matrix version.
    """
    supported = f"a matrix_version {MATRIX_VERSION} file such as roles/triton_platform/files/triton_matrix.yml"
    todo = "point triton_platform_matrix_path at the triton_platform role's files/triton_matrix.yml"
    try:
        with open(path, encoding="utf-8") as handle:
            # libyaml's loader when present: the matrix is re-read on every host's run.
            matrix = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as err:
        raise CompatError(
            "the Triton compatibility matrix cannot be read", f"{path}: {err.strerror}", supported, todo
        ) from err
    except yaml.YAMLError as err:
        raise CompatError(
            "the Triton compatibility matrix is not valid YAML", f"{path}: {err}", supported, todo
        ) from err
    version = matrix.get("matrix_version") if isinstance(matrix, dict) else None
    if version != MATRIX_VERSION:
        raise CompatError(
            "the Triton compatibility matrix has an unknown format",
            f"matrix_version {version!r} in {path}",
            supported,
            "use the matrix shipped with this version of tritonfleet",
        )
    return matrix


def _jetson_only_releases(matrix: dict[str, Any]) -> list[dict[str, Any]]:
    """Jetson tarball releases older than the release table (JetPack 4 builds)."""
    in_table = {row["server_version"] for row in matrix["releases"]}
    return [
        artifact
        for group in matrix["jetson"]["jetpacks"]
        for artifact in group.get("artifacts", [])
        if artifact["server_version"] not in in_table
    ]


def resolve_release(matrix: dict[str, Any], requested: str) -> dict[str, Any]:
    """Return the matrix row for ``requested`` ("24.10" or "2.51.0").

    Releases outside the release table that exist only as Jetson tarballs (2.17.0, 2.19.0)
    come back as a row with ``jetson_only: True`` and no CUDA/container data. Raises
    CompatError for an unknown release.
    """
    text = str(requested).strip()
    for row in matrix["releases"]:
        if text in (row["release"], row["server_version"]):
            return {**row, "jetson_only": False}
    for artifact in _jetson_only_releases(matrix):
        if text in (artifact["release"], artifact["server_version"]):
            return {
                "release": artifact["release"],
                "server_version": artifact["server_version"],
                "container_tag": None,
                "cuda_version": None,
                "release_note_driver": None,
                "forward_compat_branches": None,
                "min_compute_capability": artifact["min_compute_capability"],
                "ubuntu": None,
                "glibc": None,
                "jetson_only": True,
            }
    rows = matrix["releases"]
    jetson_only = ", ".join(a["server_version"] for a in _jetson_only_releases(matrix))
    todo = 'set triton_release to a listed release, quoted ("24.10") or as a server version ("2.51.0")'
    if _FLOAT_RELEASE_RE.fullmatch(text) and any(row["release"] == text + "0" for row in rows):
        todo = f'quote the release in YAML: triton_release: "{text}0" (unquoted {text}0 is read as the number {text})'
    raise CompatError(
        f"Triton release {text!r} is not in the compatibility matrix",
        f"triton_release={text!r}",
        f"container releases {rows[0]['release']}-{rows[-1]['release']} (server {rows[0]['server_version']}-"
        f"{rows[-1]['server_version']}) and the Jetson-only builds {jetson_only}",
        todo,
    )


def toolkit_min_driver(matrix: dict[str, Any], cuda_version: str) -> str | None:
    """Full-feature minimum driver for a CUDA toolkit version ("12.8.0.038" -> "570.26").

    Uses the exact update when listed, else the nearest lower update of the same minor; None
    when the minor is not in the table.
    """
    wanted = (*version_tuple(cuda_version), 0, 0)[:3]
    best: tuple[tuple[int, ...], str] | None = None
    for entry in matrix["cuda_driver"]["toolkits"]:
        key = (*version_tuple(entry["cuda"]), 0, 0)[:3]
        if key[:2] == wanted[:2] and key <= wanted and (best is None or key > best[0]):
            best = (key, entry["min_driver"])
    return best[1] if best else None


def _family_of_major(matrix: dict[str, Any], major: int) -> dict[str, Any] | None:
    return next((f for f in matrix["cuda_driver"]["families"] if f["cuda_major"] == major), None)


def cuda_family(matrix: dict[str, Any], cuda_version: str) -> dict[str, Any] | None:
    """The minor-version-compatibility family (CUDA major) of ``cuda_version``, or None."""
    return _family_of_major(matrix, version_tuple(cuda_version)[0])


def series_cuda_major(matrix: dict[str, Any], row: dict[str, Any]) -> tuple[int | None, str]:
    """The CUDA major of a release whose exact CUDA version is not published, from the releases around it.

    Returns ``(major, which releases say so)`` when the nearest releases before and after with a
    published CUDA version share their major (a release between two CUDA 12 releases is CUDA 12),
    else ``(None, why not)``.
    """
    rows = matrix["releases"]
    at = next((i for i, r in enumerate(rows) if r["release"] == row["release"]), None)
    if at is None:
        return None, f"{row['release']} is not in the release table"
    before = next((r for r in reversed(rows[:at]) if r["cuda_version"]), None)
    after = next((r for r in rows[at + 1 :] if r["cuda_version"]), None)
    if before is None or after is None:
        return None, f"no release with a published CUDA version on both sides of {row['release']}"
    majors = {version_tuple(r["cuda_version"])[0] for r in (before, after)}
    around = f"{before['release']} CUDA {before['cuda_version']}, {after['release']} CUDA {after['cuda_version']}"
    if len(majors) != 1:
        return None, f"the releases around {row['release']} differ in CUDA major ({around})"
    return majors.pop(), around


def release_cuda_family(matrix: dict[str, Any], row: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The CUDA family of a release row and how it is known: its CUDA version, else its series."""
    if row["cuda_version"]:
        return cuda_family(matrix, row["cuda_version"]), f"CUDA {row['cuda_version']}"
    major, around = series_cuda_major(matrix, row)
    if major is None:
        return None, around
    basis = f"CUDA {major}.x by the releases around it ({around}); its exact CUDA version is not published"
    return _family_of_major(matrix, major), basis


def required_driver(matrix: dict[str, Any], row: dict[str, Any]) -> tuple[str | None, str]:
    """Minimum driver for a release row and the basis of that number.

    Derived from the CUDA version (toolkit table, else family minimum). When the release's CUDA
    version is not published, the release-note driver text when there is one, else the minimum
    of its CUDA major family known from the release series. Returns ``(None, why)`` when unknown.
    """
    cuda = row["cuda_version"]
    if cuda is None:
        if row["release_note_driver"]:
            return row["release_note_driver"], f"release notes of {row['release']} (CUDA version not published)"
        family, basis = release_cuda_family(matrix, row)
        if family:
            return family["min_driver"], f"CUDA {family['cuda_major']}.x minor-version compatibility: {basis}"
        return None, f"the CUDA version of {row['release']} is not published and {basis}"
    exact = toolkit_min_driver(matrix, cuda)
    if exact:
        return exact, f"CUDA {cuda} full support"
    family = cuda_family(matrix, cuda)
    if family:
        return family["min_driver"], f"CUDA {family['cuda_major']}.x minor-version compatibility"
    return None, f"CUDA {cuda} is not in the matrix's driver table"


def is_datacenter_gpu(matrix: dict[str, Any], name: str | None) -> bool:
    """True when the NVML GPU name matches one of the matrix's data-center patterns."""
    return bool(name) and any(re.search(p, name) for p in matrix["datacenter_gpus"]["patterns"])


def driver_supports(matrix: dict[str, Any], row: dict[str, Any], driver: str, datacenter: bool) -> str | None:
    """How ``driver`` runs the release of ``row``, or None when it cannot.

    Returns "full", "minor" (CUDA minor-version compatibility) or "forward:<branch>" (data-center
    forward compatibility on a branch the release notes list).
    """
    required, _basis = required_driver(matrix, row)
    if required is None or version_at_least(driver, required):
        return "full"
    family, _how = release_cuda_family(matrix, row)
    if family and version_at_least(driver, family["min_driver"]):
        return "minor"
    if datacenter and family and family["forward_compat_verified"]:
        branch = version_tuple(driver)[0]
        for start in row["forward_compat_branches"] or []:
            if version_tuple(start)[0] == branch and version_at_least(driver, start):
                return f"forward:{start}"
    return None


def _describe_gpus(gpus: list[dict[str, Any]]) -> str:
    return ", ".join(f"GPU {g['index']} {g.get('name') or '?'} (CC {g.get('compute_capability') or '?'})" for g in gpus)


def _glibc_of(host: dict[str, Any]) -> str | None:
    return (host.get("os") or {}).get("glibc_version")


def _os_label(host: dict[str, Any]) -> str:
    info = host.get("os") or {}
    return info.get("pretty_name") or f"{info.get('id')} {info.get('version_id')}"


def _check_glibc(host: dict[str, Any], needed: str, what: str, basis: str, newest_ok: str, notes: list[str]) -> None:
    """Fail when a native build needs a newer glibc than the host has.

    ``basis`` says where ``needed`` comes from (a wheel's manylinux tag, or a build's base
    image: NVIDIA publishes no glibc floor for its builds, so that one is inferred).
    """
    glibc = _glibc_of(host)
    if glibc is None:
        notes.append(f"host glibc unknown (triton_host.os.glibc_version): {what} needs glibc >= {needed}, not checked")
        return
    if not version_at_least(glibc, needed):
        raise CompatError(
            f"{what} needs glibc {needed} but the host has glibc {glibc}: the dynamic loader refuses to start it "
            f'with "version `GLIBC_2.xx\' not found" (server issue #8367 reports "GLIBC_2.36 not found" for the '
            "Ubuntu 24.04-based igpu builds on JetPack 6)",
            f"glibc {glibc} on {_os_label(host)} (triton_host.os.glibc_version)",
            f"native installs need a host glibc at least as new as the build's; {basis}; {newest_ok}",
            "pick that release in triton_release, or use triton_install_method: container (the image brings "
            "its own glibc) or source",
        )


def _inferred_glibc(row: dict[str, Any]) -> str:
    return (
        f"glibc {row['glibc']} is inferred from the build's base image (Ubuntu {row['ubuntu']} ships glibc "
        f"{row['glibc']}); NVIDIA publishes no glibc floor"
    )


def _newest_for_glibc(rows: list[dict[str, Any]], glibc: str | None) -> str:
    fitting = [r for r in rows if glibc and version_at_least(glibc, r["glibc"])]
    if not fitting:
        return f"no release in range fits glibc {glibc}"
    row = fitting[-1]
    return f"the newest release built for glibc <= {glibc} is {row['release']} ({row['server_version']})"


def _check_wheel(
    matrix: dict[str, Any], host: dict[str, Any], row: dict[str, Any], notes: list[str], igpu: bool = False
) -> None:
    """Refuse the wheel where it cannot serve: another release, another arch, an iGPU, an older glibc."""
    wheel = matrix["wheel"]
    bundle = f"{wheel['package']} {wheel['version']} bundles only Triton {wheel['server_version']} ({wheel['release']})"
    if row["server_version"] != wheel["server_version"]:
        raise CompatError(
            f"install method wheel cannot install Triton {row['server_version']} ({row['release']})",
            f"triton_install_method=wheel with triton_release={row['release']}",
            f"{bundle} for {', '.join(wheel['arches'])}",
            f'set triton_release: "{wheel["release"]}", or use triton_install_method: container, tarball or source',
        )
    if host.get("arch") not in wheel["arches"]:
        raise CompatError(
            f"install method wheel is not available on {host.get('arch')}",
            f"arch {host.get('arch')} on a {host.get('platform')} host (triton_host.arch)",
            f"{bundle} for {', '.join(wheel['arches'])} only",
            "use triton_install_method: tarball or container (Jetson: tarball), or source",
        )
    if igpu:
        raise CompatError(
            "install method wheel cannot drive the Jetson iGPU",
            f"a Jetson host, arch {host.get('arch')}, JetPack {host.get('jetpack_version')} (triton_host)",
            f"{bundle}; its {host.get('arch')} wheel is {wheel['aarch64_build']}, not the igpu build that drives "
            "Jetson's integrated GPU on JetPack 6",
            "use triton_install_method: tarball (the igpu tarball) or container (the -igpu image)",
        )
    tag = f"manylinux_{wheel['min_glibc'].replace('.', '_')}"
    _check_glibc(
        host,
        wheel["min_glibc"],
        f"the {wheel['package']} wheel ({tag})",
        f"glibc {wheel['min_glibc']} is the wheel's {tag} tag",
        "no other release ships as a wheel",
        notes,
    )


def _standard_target(
    matrix: dict[str, Any], host: dict[str, Any], row: dict[str, Any], method: str, notes: list[str]
) -> dict[str, Any]:
    """Build target of an x86/SBSA host (platform dgpu or cpu)."""
    arch = host.get("arch")
    if row["jetson_only"]:
        rows = matrix["releases"]
        raise CompatError(
            f"Triton {row['server_version']} ({row['release']}) exists only as a Jetson tarball",
            f"a {host.get('platform')} host, arch {arch} (triton_host.platform)",
            f"releases {rows[0]['release']}-{rows[-1]['release']} on {host.get('platform')} hosts",
            'set triton_release to one of them, e.g. "24.10"',
        )
    container_ok = arch in matrix["container"]["arches"]
    min_cc = row["min_compute_capability"]
    if method == "wheel":
        _check_wheel(matrix, host, row, notes)
    elif method == "tarball":
        _check_glibc(
            host,
            row["glibc"],
            f"the Triton {row['release']} build (Ubuntu {row['ubuntu']})",
            _inferred_glibc(row),
            _newest_for_glibc(matrix["releases"], _glibc_of(host)),
            notes,
        )
        notes.append(
            f"NVIDIA publishes server tarballs only for Jetson: the {arch} tarball must come from your own build "
            "or a copy of the container's /opt/tritonserver"
        )
    elif method == "container" and not container_ok:
        raise CompatError(
            f"install method container has no Triton image for {arch}",
            f"arch {arch} (triton_host.arch)",
            f"{matrix['container']['image']} images for {', '.join(matrix['container']['arches'])}",
            "use triton_install_method: source (or tarball with your own build)",
        )
    elif method == "source":
        build_min = matrix["source_build"]["min_compute_capability"]
        if build_min != min_cc:
            notes.append(
                f"source build: build.py compiles for compute capability >= {build_min} (its default), "
                f"below the prebuilt {row['release']} minimum {min_cc}"
            )
        min_cc = build_min
    return {
        "cuda_version": row["cuda_version"],
        "min_compute_capability": min_cc,
        "container_tag": row["container_tag"] if container_ok else None,
        "jetson_artifact": None,
        "device_ccs": [],
    }


def _jetson_group(matrix: dict[str, Any], host: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """The matrix's JetPack group for the host, its JetPack version and a "found where" text."""
    source = host.get("l4t_source") or "no /etc/nv_tegra_release and no nvidia-l4t-core package"
    l4t = host.get("l4t_version") or host.get("l4t_raw") or "unknown"
    jetpack = host.get("jetpack_version")
    where = f"L4T {l4t} from {source}"
    majors = [g["jetpack_major"] for g in matrix["jetson"]["jetpacks"]]
    if not host.get("l4t_known") or not jetpack:
        raise CompatError(
            "the host's Jetson Linux (L4T) release is unknown, so its JetPack cannot be matched to a Triton build",
            where,
            f"L4T releases listed in module_utils/triton_host.py for JetPack {', '.join(map(str, majors))}",
            "add this L4T release with its JetPack version to L4T_TO_JETPACK in module_utils/triton_host.py, "
            "or flash a listed JetPack release",
        )
    jetpack = parse_version_prefix(jetpack) or jetpack
    where = f"JetPack {jetpack} ({where})"
    major = version_tuple(jetpack)[0]
    group = next((g for g in matrix["jetson"]["jetpacks"] if g["jetpack_major"] == major), None)
    if group is None:
        raise CompatError(
            f"no Triton build exists for JetPack {jetpack}",
            where,
            f"JetPack {', '.join(map(str, majors))}",
            "flash a supported JetPack (Orin: JetPack 6 or 7; Nano/TX2: JetPack 4; Xavier: JetPack 5)",
        )
    return group, jetpack, where


def _jetson_no_build(row: dict[str, Any], where: str, supported: str, todo: str, group: dict[str, Any]) -> CompatError:
    return CompatError(
        f"no Triton {row['server_version']} ({row['release']}) build runs on JetPack {group['jetpack_major']}",
        where,
        supported,
        todo,
    )


def _jetson_artifact_target(
    matrix: dict[str, Any],
    host: dict[str, Any],
    row: dict[str, Any],
    method: str,
    jetson: dict[str, Any],
    notes: list[str],
) -> dict[str, Any]:
    """JetPack 4/5: per-JetPack tarballs only."""
    group, jetpack, where = jetson["group"], jetson["jetpack"], jetson["where"]
    builds = group["artifacts"]
    listing = ", ".join(
        f"{a['server_version']} ({a['release']}) {a['name']} for JetPack >= {a['min_jetpack']}" for a in builds
    )
    usable = [a for a in builds if version_at_least(jetpack, a["min_jetpack"])]
    newest = usable[-1] if usable else None
    todo = (
        f'set triton_release: "{newest["server_version"]}" with triton_install_method: tarball'
        if newest
        else f"upgrade to JetPack >= {builds[0]['min_jetpack']}"
    )
    if method in ("container", "wheel"):
        raise CompatError(
            f"install method {method} is not available on JetPack {group['jetpack_major']}",
            f"triton_install_method={method} on {where}",
            f"JetPack {group['jetpack_major']}: Triton tarballs {listing}; no Triton container runs there "
            "(igpu containers need JetPack 6, server issues #5641, #6702)",
            todo,
        )
    artifact = next((a for a in builds if a["server_version"] == row["server_version"]), None)
    if method == "tarball":
        if artifact is None:
            raise _jetson_no_build(row, where, f"JetPack {group['jetpack_major']}: {listing}", todo, group)
        if not version_at_least(jetpack, artifact["min_jetpack"]):
            raise CompatError(
                f"{artifact['name']} needs JetPack >= {artifact['min_jetpack']}",
                where,
                listing,
                todo if newest else f"upgrade to JetPack >= {artifact['min_jetpack']}",
            )
    else:
        notes.append(
            f"source build on JetPack {jetpack}: the build docs have no Jetson procedure; the prebuilt "
            f"JetPack {group['jetpack_major']} tarballs are {listing}"
        )
    return {
        "cuda_version": group["cuda_version"],
        "min_compute_capability": artifact["min_compute_capability"] if artifact else row["min_compute_capability"],
        "container_tag": None,
        "jetson_artifact": (
            {
                "kind": "tarball",
                "name": artifact["name"],
                "server_version": artifact["server_version"],
                "release": artifact["release"],
                "jetpack": artifact["jetpack"],
                "min_jetpack": artifact["min_jetpack"],
                "source": artifact["source"],
            }
            if method == "tarball"
            else None
        ),
        "device_ccs": group["compute_capabilities"],
    }


def _in_range(release: str, first: str, last: str | None = None) -> bool:
    key = version_tuple(release)
    return key >= version_tuple(first) and (last is None or key <= version_tuple(last))


def _jetson_igpu_target(
    matrix: dict[str, Any],
    host: dict[str, Any],
    row: dict[str, Any],
    method: str,
    jetson: dict[str, Any],
    notes: list[str],
) -> dict[str, Any]:
    """JetPack 6: igpu tarballs and "-igpu" containers, 23.11 to 26.02."""
    group, where = jetson["group"], jetson["where"]
    igpu = group["igpu"]
    first, last = igpu["first_release"], igpu["last_release"]
    rows = [r for r in matrix["releases"] if _in_range(r["release"], first, last)]
    native = [r for r in rows if r["ubuntu"] == group["ubuntu"]]
    newest_native = f"{native[-1]['release']} ({native[-1]['server_version']})"
    in_range = not row["jetson_only"] and _in_range(row["release"], first, last)
    if method == "wheel":
        _check_wheel(matrix, host, row, notes, igpu=True)
    if not in_range and method in ("tarball", "container"):
        raise _jetson_no_build(
            row,
            where,
            f"igpu builds {first} ({rows[0]['server_version']}) to {last} ({rows[-1]['server_version']}); as a "
            f"tarball on JetPack 6 (Ubuntu {group['ubuntu']}) up to {newest_native}",
            f'set triton_release: "{native[-1]["release"]}"',
            group,
        )
    tag = row["container_tag"] + igpu["container_tag_suffix"] if in_range else None
    artifact = None
    if method == "tarball":
        _check_glibc(
            host,
            row["glibc"],
            f"the Triton {row['server_version']} igpu tarball (built on Ubuntu {row['ubuntu']})",
            _inferred_glibc(row),
            f"igpu tarballs up to {newest_native} are built on Ubuntu {group['ubuntu']}",
            notes,
        )
        name = igpu["tarballs"].get(row["server_version"])
        if name is None:
            notes.append(
                f"the file name of the {row['server_version']} igpu tarball is not verified in the matrix: "
                "give triton_install the download URL explicitly"
            )
        artifact = {"kind": "tarball", "name": name}
    elif method == "container":
        artifact = {"kind": "container", "name": f"{matrix['container']['image']}:{tag}"}
    if artifact:
        artifact.update(
            server_version=row["server_version"],
            release=row["release"],
            jetpack=None,
            min_jetpack=f"{group['jetpack_major']}.0",
            source=group["source"],
        )
        notes.append(
            "which JetPack 6.x minor each igpu build targets is not published (DeepStream pins 23.11-igpu to "
            "JetPack 6.0 DP and 24.08-igpu to JetPack 6.1)"
        )
    return {
        "cuda_version": None,
        "min_compute_capability": row["min_compute_capability"],
        "container_tag": tag,
        "jetson_artifact": artifact,
        "device_ccs": group["compute_capabilities"],
    }


def _jetson_sbsa_target(
    matrix: dict[str, Any],
    host: dict[str, Any],
    row: dict[str, Any],
    method: str,
    jetson: dict[str, Any],
    notes: list[str],
) -> dict[str, Any]:
    """JetPack 7: the standard arm64 (SBSA) images, no Jetson tarball."""
    group, where = jetson["group"], jetson["where"]
    first = group["sbsa"]["first_release"]
    if method == "wheel":
        _check_wheel(matrix, host, row, notes)
    if method == "tarball":
        raise CompatError(
            "install method tarball is not available on JetPack 7",
            f"triton_install_method=tarball on {where}",
            f"JetPack 7 runs the standard arm64 (SBSA) Triton images from {first}; the last Jetson tarball was 26.02",
            "use triton_install_method: container or source",
        )
    if row["jetson_only"] or not _in_range(row["release"], first):
        raise _jetson_no_build(
            row,
            where,
            f"JetPack 7 ships CUDA 13: standard arm64 images from {first} (the first CUDA 13 release)",
            f'set triton_release to "{first}" or newer',
            group,
        )
    artifact = None
    if method == "container":
        artifact = {
            "kind": "container",
            "name": f"{matrix['container']['image']}:{row['container_tag']}",
            "server_version": row["server_version"],
            "release": row["release"],
            "jetpack": None,
            "min_jetpack": f"{group['jetpack_major']}.0",
            "source": group["source"],
        }
        notes.append("JetPack 7 uses the standard arm64 (SBSA) image; verify each release on the device")
    return {
        "cuda_version": row["cuda_version"],
        "min_compute_capability": row["min_compute_capability"],
        "container_tag": row["container_tag"],
        "jetson_artifact": artifact,
        "device_ccs": group["compute_capabilities"],
    }


def _jetson_target(
    matrix: dict[str, Any], host: dict[str, Any], row: dict[str, Any], method: str, notes: list[str]
) -> dict[str, Any]:
    group, jetpack, where = _jetson_group(matrix, host)
    jetson = {"group": group, "jetpack": jetpack, "where": where}
    notes.append("Jetson: run tritonserver with --allow-gpu-metrics=false (no GPU metrics on Jetson)")
    if "igpu" in group:
        return _jetson_igpu_target(matrix, host, row, method, jetson, notes)
    if "sbsa" in group:
        return _jetson_sbsa_target(matrix, host, row, method, jetson, notes)
    return _jetson_artifact_target(matrix, host, row, method, jetson, notes)


def _cpu_plan(hide: bool) -> dict[str, Any]:
    return {"enable_gpu": False, "gpus": [], "hide_gpus": hide, "min_supported_compute_capability": None}


def _request_contradiction(what: str, found: str, supported: str, todo: str) -> CompatError:
    return CompatError(f"the request contradicts the host: {what}", found, supported, todo)


def _select_jetson(
    host: dict[str, Any], target: dict[str, Any], enable_gpu: str, pinned: list[int], notes: list[str]
) -> dict[str, Any]:
    nodes_present = bool(host.get("gpu_device_nodes_present"))
    nodes = ", ".join(host.get("gpu_device_nodes") or []) or "none"
    nodes_where = f"{nodes} under {host.get('root', '/')} (triton_host.gpu_device_nodes)"
    igpu = host.get("igpu") or {}
    if enable_gpu == "false":
        if pinned:
            raise _request_contradiction(
                f"triton_gpus pins {pinned} but triton_enable_gpu is false",
                f"triton_gpus={pinned}, triton_enable_gpu=false",
                "pinned GPUs only with triton_enable_gpu auto or true",
                "clear triton_gpus or set triton_enable_gpu: auto",
            )
        # A Jetson always has its iGPU: a GPU-enabled build must not touch it on a CPU plan.
        return _cpu_plan(hide=True)
    if any(index != 0 for index in pinned):
        raise _request_contradiction(
            f"triton_gpus pins {pinned} but a Jetson has one GPU, CUDA id 0",
            f"Jetson iGPU {igpu.get('name')} (triton_host.igpu)",
            "triton_gpus: [] or [0] on Jetson",
            "set triton_gpus: [0] or leave it empty",
        )
    if not nodes_present:
        if enable_gpu == "true" or pinned:
            raise _request_contradiction(
                "triton_enable_gpu is true but the Jetson GPU device nodes are missing",
                f"device nodes {nodes_where}",
                "a GPU plan on Jetson needs /dev/nvhost-ctrl-gpu or /dev/nvgpu/igpu0/ctrl (nvgpu driver loaded, "
                "devices passed into the container)",
                "load the GPU driver or pass the device nodes through, or set triton_enable_gpu: auto or false",
            )
        notes.append(f"Jetson GPU device nodes absent: {nodes_where}; CPU plan with the iGPU hidden")
        return _cpu_plan(hide=True)
    cc = igpu.get("compute_capability")
    min_cc = target["min_compute_capability"]
    flag = None
    if cc is None:
        notes.append(
            "Jetson iGPU compute capability unknown (triton_host.igpu): --min-supported-compute-capability not set"
        )
    elif not version_at_least(cc, min_cc):
        if cc not in target["device_ccs"]:
            raise CompatError(
                f"the Jetson iGPU (CC {cc}) is below the build's minimum {min_cc} and the build is not compiled for it",
                f"iGPU {igpu.get('name')} CC {cc} on {host.get('module_name') or host.get('board')} (triton_host.igpu)",
                f"this JetPack's builds run on CC {', '.join(target['device_ccs'])}",
                "check the board's JetPack (triton_host.jetpack_version), or set triton_enable_gpu: false",
            )
        flag = cc
        notes.append(
            f"pass --min-supported-compute-capability={cc}: the build's default {min_cc} would drop the iGPU (CC {cc})"
        )
    return {
        "enable_gpu": True,
        "gpus": [{"index": 0, "name": igpu.get("name"), "compute_capability": cc}],
        "hide_gpus": False,
        "min_supported_compute_capability": flag,
    }


def _newest_for_cc(matrix: dict[str, Any], cc: str) -> dict[str, Any] | None:
    fitting = [r for r in matrix["releases"] if version_at_least(cc, r["min_compute_capability"])]
    return fitting[-1] if fitting else None


def _cc_error(
    matrix: dict[str, Any], row: dict[str, Any], min_cc: str, low: list[dict[str, Any]], wrong: str
) -> CompatError:
    known = [g["compute_capability"] for g in low if g.get("compute_capability")]
    best_cc = max(known, key=version_tuple) if known else None
    newest = _newest_for_cc(matrix, best_cc) if best_cc else None
    build_min = matrix["source_build"]["min_compute_capability"]
    if newest:
        todo = (
            f'set triton_release: "{newest["release"]}" ({newest["server_version"]}), the newest release whose '
            f"minimum is <= {best_cc}, or triton_install_method: source (build.py compiles for >= {build_min})"
        )
    else:
        todo = (
            f"no prebuilt release supports CC {best_cc}: build from source with build.py "
            f"--min-compute-capability={best_cc}, or set triton_enable_gpu: false"
        )
    return CompatError(
        wrong,
        f"{_describe_gpus(low)} (NVML, triton_host.gpus)",
        f"Triton {row['release']} uses GPUs with compute capability >= {min_cc}; releases up to 24.12 run on >= 6.0, "
        "from 25.01 on >= 7.5",
        todo + "; or triton_enable_gpu: false for a CPU plan",
    )


def _select_dgpu(
    matrix: dict[str, Any],
    host: dict[str, Any],
    row: dict[str, Any],
    target: dict[str, Any],
    enable_gpu: str,
    pinned: list[int],
    notes: list[str],
) -> dict[str, Any]:
    gpus = host.get("gpus") or []
    if enable_gpu == "false":
        if pinned:
            raise _request_contradiction(
                f"triton_gpus pins {pinned} but triton_enable_gpu is false",
                f"triton_gpus={pinned}, triton_enable_gpu=false",
                "pinned GPUs only with triton_enable_gpu auto or true",
                "clear triton_gpus or set triton_enable_gpu: auto",
            )
        notes.append("CPU plan on a GPU host: hide the GPUs from Triton (CUDA_VISIBLE_DEVICES='', zero CUDA pools)")
        return _cpu_plan(hide=True)
    nvml_reason = (host.get("nvml") or {}).get("reason")
    if not gpus:
        if enable_gpu == "true" or pinned:
            raise CompatError(
                "a GPU plan was requested but the host's GPUs cannot be listed",
                f"driver {host.get('driver_version')} ({host.get('driver_source')}), triton_host.gpus empty, "
                f"NVML: {nvml_reason}",
                "GPU plans on dGPU hosts need the GPU list from NVML or /proc/driver/nvidia/gpus",
                "repair the driver (reboot after a driver upgrade, install its user-space libraries) or set "
                "triton_enable_gpu: false",
            )
        notes.append(f"no GPU listed (NVML: {nvml_reason}): CPU plan with GPUs hidden")
        return _cpu_plan(hide=True)
    min_cc = target["min_compute_capability"]
    by_index = {g["index"]: g for g in gpus}
    if pinned:
        missing = [index for index in pinned if index not in by_index]
        if missing:
            raise _request_contradiction(
                f"triton_gpus pins GPU(s) {missing} that the host does not have",
                f"{_describe_gpus(gpus)} (triton_host.gpus)",
                f"CUDA ids {sorted(by_index)} on this host",
                "set triton_gpus to a subset of those ids, or [] for all usable GPUs",
            )
        chosen = [by_index[index] for index in pinned]
    else:
        chosen = gpus

    def fits(gpu: dict[str, Any]) -> bool:
        cc = gpu_compute_capability(host, gpu["index"])
        return cc is None or version_at_least(cc, min_cc)

    low = [g for g in chosen if not fits(g)]
    used = [g for g in chosen if fits(g)]
    if low and (pinned or not used):
        what = "pinned" if pinned else "every"
        raise _cc_error(
            matrix,
            row,
            min_cc,
            low,
            f"{what} GPU is below the minimum compute capability {min_cc} of Triton {row['release']}",
        )
    for gpu in low:
        notes.append(
            f"GPU {gpu['index']} {gpu.get('name')} (CC {gpu['compute_capability']}) is below the minimum {min_cc} "
            "and is not used (Triton drops it silently)"
        )
    for gpu in used:
        if gpu.get("compute_capability") is None:
            notes.append(
                f"GPU {gpu['index']} {gpu.get('name')}: compute capability unknown (NVML: {nvml_reason}); "
                "Triton drops it at start if below the minimum"
            )
        if gpu.get("mig_mode") == "enabled":
            notes.append(f"GPU {gpu['index']} has MIG enabled: Triton sees MIG devices and reports no GPU metrics")
    return {"enable_gpu": True, "gpus": used, "hide_gpus": False, "min_supported_compute_capability": None}


def _select_gpus(
    matrix: dict[str, Any],
    host: dict[str, Any],
    row: dict[str, Any],
    target: dict[str, Any],
    enable_gpu: str,
    pinned: list[int],
    notes: list[str],
) -> dict[str, Any]:
    platform = host["platform"]
    if platform == "jetson":
        return _select_jetson(host, target, enable_gpu, pinned, notes)
    if platform == "dgpu":
        return _select_dgpu(matrix, host, row, target, enable_gpu, pinned, notes)
    if enable_gpu == "true" or pinned:
        raise _request_contradiction(
            f"triton_enable_gpu={enable_gpu}, triton_gpus={pinned} on a host without GPU",
            f"{(host.get('reasons') or ['platform=cpu'])[0]} (triton_host.reasons)",
            "GPU plans on Jetson and dGPU hosts only; CPU hosts run KIND_CPU models",
            "set triton_enable_gpu: auto or false and triton_gpus: [] for this host",
        )
    return _cpu_plan(hide=False)


def _check_driver(
    matrix: dict[str, Any],
    host: dict[str, Any],
    row: dict[str, Any],
    method: str,
    used: list[dict[str, Any]],
    notes: list[str],
) -> None:
    required, basis = required_driver(matrix, row)
    driver = host.get("driver_version")
    if required is None:
        notes.append(f"driver requirement not checked: {basis}")
        return
    if row["cuda_version"] is None:
        notes.append(
            f"the CUDA version of {row['release']} is not published: the driver must be >= {required} ({basis})"
        )
    if driver is None:
        notes.append(f"driver version unknown (triton_host.driver_version): needs >= {required}, not checked")
        return
    datacenter = all(is_datacenter_gpu(matrix, g.get("name")) for g in used)
    how = driver_supports(matrix, row, driver, datacenter)
    if how == "minor":
        notes.append(
            f"driver {driver} is below {required} ({basis}) but runs CUDA {row['cuda_version']} through minor-version "
            "compatibility; features that need a newer driver (PTX JIT of newer code) are unavailable"
        )
    elif how and how.startswith("forward:"):
        notes.append(
            f"driver {driver} runs CUDA {row['cuda_version']} through data-center forward compatibility (branch "
            f"{how.split(':')[1]}); the NGC container ships cuda-compat"
            + ("" if method == "container" else ", other methods need the host's cuda-compat package")
        )
    if how:
        return
    cuda = row["cuda_version"] or "not published"
    family, _how = release_cuda_family(matrix, row)
    if family is None:
        forward = "none"
    elif family["forward_compat_verified"]:
        forward = f"data-center GPUs only, branches {', '.join(row['forward_compat_branches'] or []) or 'none'}"
    else:
        forward = f"not verified for CUDA {family['cuda_major']}"
    fitting = [
        r
        for r in matrix["releases"]
        if r["cuda_version"]
        and driver_supports(matrix, r, driver, datacenter)
        and all(
            g.get("compute_capability") is None
            or version_at_least(g["compute_capability"], r["min_compute_capability"])
            for g in used
        )
    ]
    if fitting:
        todo = (
            f'upgrade the driver to >= {required}, or set triton_release: "{fitting[-1]["release"]}" '
            f"({fitting[-1]['server_version']}), the newest release that works with driver {driver}"
        )
        if method == "wheel":
            todo += " (with triton_install_method: container, tarball or source)"
    else:
        todo = f"upgrade the driver to >= {required}: no release in the matrix works with driver {driver} on these GPUs"
    raise CompatError(
        f"NVIDIA driver {driver} is too old for Triton {row['release']} ({row['server_version']}, CUDA {cuda})",
        f"driver {driver} from {host.get('driver_source')} for {_describe_gpus(used)}"
        + ("" if datacenter else ", not all data-center GPUs"),
        f"driver >= {required} ({basis})"
        + (
            f", >= {family['min_driver']} with CUDA {family['cuda_major']}.x minor-version compatibility"
            if family and family["min_driver"] != required
            else ""
        )
        + f"; forward compatibility: {forward}",
        todo,
    )


def _fixed_gpu_build(method: str, platform: str, requested: str) -> bool | None:
    """The server build's GPU support, where the artifact fixes it; None when the plan's GPU use decides.

    The pytriton wheel, the NGC images and NVIDIA's Jetson tarballs are GPU builds; an x86
    tarball is taken for a copy of the container's ``/opt/tritonserver`` (a GPU build) unless
    ``requested`` says ``false``; a source build follows ``requested``, else the plan.
    """
    prebuilt = method in ("wheel", "container") or (method == "tarball" and platform == "jetson")
    if prebuilt and requested == "false":
        artifact = "NVIDIA's Jetson tarball" if method == "tarball" else f"the {method} artifact"
        raise _request_contradiction(
            f"triton_gpu_build is false but {artifact} is a GPU build",
            f"triton_gpu_build=false, triton_install_method={method} on a {platform} host",
            "triton_gpu_build: false with the tarball method off Jetson (your own CPU-only build) or the source method",
            "set triton_gpu_build: auto, or use triton_install_method: source for a CPU-only build",
        )
    if prebuilt:
        return True
    if requested == "auto":
        return True if method == "tarball" else None
    return requested == "true"


def _host_gpu_ids(host: dict[str, Any]) -> list[int]:
    """Every CUDA id the host has: NVML's GPUs, and the Jetson iGPU (id 0) where NVML lists none."""
    ids = {g["index"] for g in host.get("gpus") or [] if isinstance(g.get("index"), int)}
    if host.get("platform") == "jetson" and host.get("igpu"):
        ids.add(0)
    return sorted(ids)


def release_backends(matrix: dict[str, Any], row: dict[str, Any], method: str, arch: str | None) -> list[str] | None:
    """The ``backends/`` of the release an install method provides, from the matrix; None when not published
    (tarballs, source builds, -igpu and arm64 images: checked against the manifest once installed)."""
    if method == "wheel":
        return list(matrix["wheel"]["backends"])
    if method != "container" or row.get("jetson_only"):
        return None
    for entry in matrix["container"].get("backends", []):
        if arch in entry["arches"] and _in_range(row["release"], entry["first_release"], entry["last_release"]):
            return list(entry["backends"])
    return None


CONTAINER_ENGINE_CHOICES = ("auto", *SUPPORTED_ENGINES)


def _gpu_handover_problem(engine: dict[str, Any], devices: list[str], host: dict[str, Any]) -> tuple[str, str] | None:
    """What the plan's GPU flags for ``engine`` need that the host lacks: (found, fix), or None."""
    tools = {path.rsplit("/", 1)[-1] for path in (host.get("nvidia_container_runtime") or {}).get("paths") or []}
    cdi_specs = (host.get("nvidia_container_runtime") or {}).get("cdi_specs") or []
    flags = " ".join(devices)
    if "--gpus" in devices and "nvidia-container-runtime-hook" not in tools:
        return (
            f"{flags} for {engine['name']}, but no nvidia-container-runtime-hook (found: "
            f"{', '.join(sorted(tools)) or 'none'})",
            "install the NVIDIA Container Toolkit (nvidia-container-toolkit) and restart docker, whose --gpus "
            "runs that hook, or set triton_container_gpu_mode: cdi",
        )
    if "--runtime" in devices and devices[devices.index("--runtime") + 1] not in engine.get("runtimes", []):
        wanted = devices[devices.index("--runtime") + 1]
        return (
            f"{flags} for {engine['name']}, whose runtimes are {', '.join(engine.get('runtimes', [])) or 'none'}",
            f"register the {wanted} runtime (nvidia-ctk runtime configure --runtime={engine['name']}) and restart "
            f"{engine['name']}",
        )
    if any(arg.startswith("nvidia.com/gpu=") for arg in devices) and not cdi_specs:
        return (
            f"{flags} for {engine['name']}, but no CDI spec under /etc/cdi or /var/run/cdi",
            "generate one: nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml (on Jetson add --mode=csv)",
        )
    return None


def _container_engine(host: dict[str, Any], runtime: dict[str, Any], wanted: str, gpu_mode: str) -> dict[str, Any]:
    """Choose the engine that runs the server's container (triton_host.container_engines); raise when none can.

    ``wanted`` is auto (the first of docker, podman that can start a container here) or an engine
    name. An engine whose ability is not judged (facts from a root that is not the running host)
    counts as able. A GPU plan also needs what the engine's GPU flags (``runtime.container_devices``) use.
    """
    engines = host.get("container_engines") or []
    found = (
        "; ".join(
            f"{e.get('name')} at {e.get('path')}: " + ("; ".join(e.get("problems") or []) or "can run containers")
            for e in engines
        )
        or "triton_host.container_engines is empty (no docker, podman or nerdctl found)"
    )
    candidates = [
        e
        for e in engines
        if e.get("name") in SUPPORTED_ENGINES and e.get("can_run") is not False and wanted in ("auto", e.get("name"))
    ]
    candidates.sort(key=lambda e: SUPPORTED_ENGINES.index(e["name"]))
    if not candidates:
        named = [e for e in engines if e.get("name") == wanted]
        raise CompatError(
            "install method container needs a container engine that can start the server's container"
            + ("" if wanted == "auto" else f" ({wanted}, from triton_container_engine)"),
            found,
            "docker with a running daemon, or podman with an OCI runtime that works here (docs/containers.md)",
            "fix what the engine's message names"
            if named or (wanted == "auto" and engines)
            else "install podman (apt-get install podman runc) or docker, or set triton_install_method: wheel, "
            "tarball or source",
        )
    if host.get("platform") == "jetson" and gpu_mode == "gpus" and any(runtime["container_devices"].values()):
        raise CompatError(
            "triton_container_gpu_mode is gpus on a Jetson host, where docker refuses --gpus",
            f"triton_container_gpu_mode=gpus on {host.get('module_name') or host.get('board') or 'a Jetson'} "
            "(triton_host.platform=jetson)",
            "on Jetson the NVIDIA runtime (--runtime nvidia) or CDI devices (server issue #5641)",
            "set triton_container_gpu_mode: auto, runtime or cdi",
        )
    problems = []
    for engine in candidates:
        problem = _gpu_handover_problem(engine, list(runtime["container_devices"][engine["name"]]), host)
        if problem is None:
            return engine
        problems.append(problem)
    raise CompatError(
        "the GPU plan's container cannot get the GPUs",
        "; ".join(found for found, _ in problems) + " (triton_host.nvidia_container_runtime, container_engines)",
        "docker --gpus with the NVIDIA Container Toolkit, --runtime nvidia registered with the engine, or CDI "
        "devices from a CDI spec (docs/containers.md)",
        f"{problems[0][1]}, or set triton_enable_gpu: false for a CPU container",
    )


def build_plan(
    host: dict[str, Any],
    matrix: dict[str, Any],
    release: str,
    method: str,
    enable_gpu: str = "auto",
    gpus: list[int] | None = None,
    gpu_build: str = "auto",
    container_gpu_mode: str = "auto",
    jetson_pool_bytes: dict[str, int] | None = None,
    container_engine: str = "auto",
) -> dict[str, Any]:
    """Return the ``triton_plan`` dict for ``host`` (a ``triton_host`` facts dict).

    ``release`` is "YY.MM" or a server version, ``method`` one of METHODS, ``enable_gpu``
    "auto"/"true"/"false", ``gpus`` an optional pinned list of CUDA ids, ``gpu_build``
    "auto"/"true"/"false" (the server build's GPU support), ``container_gpu_mode`` one of
    CONTAINER_GPU_MODES, ``jetson_pool_bytes`` ``{pinned, cuda}`` for Jetson GPU plans and
    ``container_engine`` one of CONTAINER_ENGINE_CHOICES (the container method's engine).
    Raises CompatError for any combination the host cannot run.
    """
    platform = host.get("platform")
    if platform not in ("jetson", "dgpu", "cpu"):
        raise CompatError(
            "the host facts have no usable platform",
            f"triton_host.platform={platform!r}",
            "jetson, dgpu or cpu (triton_host_facts schema 1)",
            "gather triton_host with the triton_host_facts module before planning",
        )
    if (
        method not in METHODS
        or enable_gpu not in ENABLE_GPU_CHOICES
        or gpu_build not in GPU_BUILD_CHOICES
        or container_gpu_mode not in CONTAINER_GPU_MODES
        or container_engine not in CONTAINER_ENGINE_CHOICES
    ):
        raise CompatError(
            "the install request is not valid",
            f"triton_install_method={method!r}, triton_enable_gpu={enable_gpu!r}, triton_gpu_build={gpu_build!r}, "
            f"triton_container_gpu_mode={container_gpu_mode!r}, triton_container_engine={container_engine!r}",
            f"methods {', '.join(METHODS)}; enable_gpu {', '.join(ENABLE_GPU_CHOICES)}; gpu_build "
            f"{', '.join(GPU_BUILD_CHOICES)}; container GPU modes {', '.join(CONTAINER_GPU_MODES)}; container "
            f"engines {', '.join(CONTAINER_ENGINE_CHOICES)}",
            "set the variables to supported values",
        )
    pools = dict(jetson_pool_bytes or {"pinned": JETSON_POOL_BYTES, "cuda": JETSON_POOL_BYTES})
    if any(not isinstance(size, int) or size < 0 for size in pools.values()):
        raise CompatError(
            "the Jetson memory pool sizes are not valid",
            f"triton_platform_jetson_pinned_memory_pool_bytes={pools.get('pinned')!r}, "
            f"triton_platform_jetson_cuda_memory_pool_bytes={pools.get('cuda')!r}",
            "sizes in bytes, 0 or more (0 turns a pool off)",
            "set both to whole numbers of bytes, e.g. 67108864 (64 MiB)",
        )
    pinned = list(gpus or [])
    row = resolve_release(matrix, release)
    notes: list[str] = []
    if platform == "jetson":
        target = _jetson_target(matrix, host, row, method, notes)
    else:
        target = _standard_target(matrix, host, row, method, notes)
    build_gpu = _fixed_gpu_build(method, platform, gpu_build)
    if build_gpu is False:
        if enable_gpu == "true" or pinned:
            raise _request_contradiction(
                "triton_gpu_build is false (a server build without GPU support) but a GPU plan is requested",
                f"triton_gpu_build=false, triton_enable_gpu={enable_gpu}, triton_gpus={pinned}",
                "GPU plans with a GPU build (triton_gpu_build auto or true)",
                "set triton_enable_gpu: auto and triton_gpus: [], or triton_gpu_build: auto",
            )
        if enable_gpu == "auto" and platform != "cpu":
            notes.append("the server build has no GPU support (triton_gpu_build: false): CPU plan")
        enable_gpu = "false"
    selection = _select_gpus(matrix, host, row, target, enable_gpu, pinned, notes)
    min_driver = None
    if platform == "dgpu" and not row["jetson_only"]:
        min_driver, _basis = required_driver(matrix, row)
        if selection["enable_gpu"]:
            _check_driver(matrix, host, row, method, selection["gpus"], notes)
    tag = target["container_tag"]
    backends = None if platform == "jetson" else release_backends(matrix, row, method, host.get("arch"))
    if backends is None:
        notes.append(
            f"the backends of a {method} install of {row['release']} on this host are not published: models are "
            "checked against them once the release is installed (its manifest lists them)"
        )
    gpu_ids = [g["index"] for g in selection["gpus"]]
    runtime = runtime_section(
        platform,
        selection["enable_gpu"],
        gpu_ids,
        _host_gpu_ids(host),
        selection["enable_gpu"] if build_gpu is None else build_gpu,
        target["min_compute_capability"],
        selection["min_supported_compute_capability"],
        container_gpu_mode,
        pools,
    )
    engine = None
    if method == "container":
        engine = _container_engine(host, runtime, container_engine, container_gpu_mode)
        notes += engine.get("notes") or []
    return {
        "release": row["release"],
        "server_version": row["server_version"],
        "install_method": method,
        "container_image": f"{matrix['container']['image']}:{tag}" if tag else None,
        "container_tag": tag,
        "cuda_version": target["cuda_version"],
        "min_driver_version": min_driver,
        "enable_gpu": selection["enable_gpu"],
        "instance_kind": "KIND_GPU" if selection["enable_gpu"] else "KIND_CPU",
        "gpu_ids": gpu_ids,
        "min_compute_capability": target["min_compute_capability"],
        "hide_gpus": selection["hide_gpus"],
        "platform": platform,
        "arch": host.get("arch"),
        "jetson_artifact": target["jetson_artifact"],
        "backends": backends,
        "matrix_version": matrix["matrix_version"],
        "notes": notes,
        "runtime": runtime,
        "container_engine": engine["name"] if engine else None,
    }
