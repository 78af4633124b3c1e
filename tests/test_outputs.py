"""Every writer follows the output rule: concurrent runs, killed runs and reruns (satmae.io)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from satmae.cli import main
from satmae.data.store.chipstore import ChipStore, list_parts
from satmae.data.store.chipwriter import ChipStoreWriter
from satmae.data.synthetic import DemoConfig, write_demo_set
from satmae.io import OutputBusyError, output_lock, stale_temporaries

CLI = "import sys; from satmae.cli import main; sys.exit(main(sys.argv[1:]))"
BANDS = ("B02", "B03", "B04", "B08")
SHAPE = dict(bands=BANDS, frames=2, height=8, width=6)
WRITE_PART = f"""
import sys
import numpy as np
from satmae.data.store.chipwriter import ChipStoreWriter
from satmae.io import OutputBusyError
root, part = sys.argv[1], sys.argv[2]
try:
    with ChipStoreWriter(root, part, bands={BANDS!r}, frames=2, height=8, width=6) as writer:
        for seed in range(5):
            writer.add({{"image": np.full((2, 4, 8, 6), seed + 1, np.uint16),
                        "bands": {BANDS!r}, "times": np.array([1, 2])}})
except OutputBusyError as error:
    print("busy:", error)
    sys.exit(3)
except FileExistsError as error:
    print("exists:", error)
    sys.exit(4)
"""


def python(*args: str) -> list[str]:
    return [sys.executable, "-c", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_set(
        tmp_path_factory.mktemp("demo") / "set", DemoConfig(size=64, num_dates=2)
    ).root


def test_stats_refuses_an_output_another_run_is_writing(demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "stats.json"
    with output_lock(out):
        result = subprocess.run(
            python(CLI, "stats", str(demo), "--out", str(out), "--quiet"),
            capture_output=True,
            text=True,
            env=environment(),
            timeout=300,
            check=False,
        )
    assert result.returncode != 0
    assert f"{out} is being written by another process (pid {os.getpid()})" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


def test_two_concurrent_stats_runs_write_once(demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "stats.json"
    runs = [
        subprocess.Popen(
            python(CLI, "stats", str(demo), "--out", str(out), "--quiet"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(),
        )
        for _ in range(2)
    ]
    outcomes = [(run.wait(timeout=300), run.stderr.read()) for run in runs]  # type: ignore[union-attr]
    codes = sorted(code for code, _ in outcomes)
    assert codes[0] == 0 and codes[1] != 0, outcomes
    failure = next(text for code, text in outcomes if code != 0)
    assert "being written by another process" in failure or "exists; pass --overwrite" in failure
    assert json.loads(out.read_text())["format"] == "satmae-stats"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.json"]


def test_stats_overwrite_never_replaces_a_folder_or_link(
    demo: Path, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "results"
    (folder / "keep").mkdir(parents=True)
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    for out in (folder, link):
        assert main(["stats", str(demo), "--out", str(out), "--quiet", "--overwrite"]) != 0
        assert "satmae replaces only regular files and folders" in capsys.readouterr().err
    assert (folder / "keep").is_dir() and link.is_symlink()


def test_a_second_writer_of_the_same_part_is_refused(tmp_path: Path) -> None:
    with ChipStoreWriter(tmp_path, "p", **SHAPE) as writer:
        writer.add({"image": np.ones((2, 4, 8, 6), np.uint16), "bands": BANDS, "times": [1, 2]})
        busy = subprocess.run(
            python(WRITE_PART, str(tmp_path), "p"),
            capture_output=True,
            text=True,
            env=environment(),
            timeout=300,
            check=False,
        )
    assert busy.returncode == 3, busy.stderr
    assert "is being written by another process" in busy.stdout
    assert [(p.name, p.count) for p in list_parts(tmp_path)] == [("p", 1)]
    with pytest.raises(FileExistsError, match="already written"):
        ChipStoreWriter(tmp_path, "p", **SHAPE)


def test_two_concurrent_writers_of_one_part_commit_it_once(tmp_path: Path) -> None:
    runs = [
        subprocess.Popen(
            python(WRITE_PART, str(tmp_path), "scene"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(),
        )
        for _ in range(2)
    ]
    codes = sorted(run.wait(timeout=300) for run in runs)
    assert codes[0] == 0 and codes[1] in (3, 4), [run.stderr.read() for run in runs]  # type: ignore[union-attr]
    assert [(p.name, p.count) for p in list_parts(tmp_path)] == [("scene", 5)]
    assert len(ChipStore(tmp_path)) == 5


def test_busy_is_also_raised_within_python(tmp_path: Path) -> None:
    code = "from satmae.io import OutputLock; import sys, time\n"
    code += "OutputLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)"
    holder = subprocess.Popen(
        python(code, str(tmp_path / "x.json")), stdout=subprocess.PIPE, text=True, env=environment()
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(OutputBusyError, match=r"x\.json is being written"),
            output_lock(tmp_path / "x.json"),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
    with output_lock(tmp_path / "x.json"):  # the kernel dropped the killed holder's lock
        pass


def test_demo_overwrite_with_fewer_dates_leaves_no_old_frame(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    first = write_demo_set(out, DemoConfig(size=64, num_dates=4))
    second = write_demo_set(out, DemoConfig(size=64, num_dates=2), overwrite=True)
    assert len(first.images) == 4 and len(second.images) == 2
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in second.files())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_a_killed_demo_run_is_cleaned_up_by_the_rerun(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    code = textwrap.dedent(
        """
        import os, sys
        from satmae.data.synthetic import DemoConfig, write_demo_set
        def die(staged):
            os._exit(9)  # killed after the rasters, before the swap
        write_demo_set(sys.argv[1], DemoConfig(size=64, num_dates=2), extras=die)
        """
    )
    killed = subprocess.run(python(code, str(out)), env=environment(), timeout=300, check=False)
    assert killed.returncode == 9
    assert not out.exists() and len(stale_temporaries(out)) == 1  # no half set under the name
    assert main(["demo-data", "--out", str(out), "--size", "64", "--dates", "2"]) == 0
    assert not stale_temporaries(out) and (out / "overview.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_demo_overwrite_refuses_a_folder_that_is_not_a_demo_set(tmp_path: Path, capsys) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / ".demo-abc123").mkdir()  # what an older satmae left inside the folder
    (out / "mine.tif").write_bytes(b"x")
    assert main(["demo-data", "--out", str(out), "--size", "64", "--overwrite"]) != 0
    err = capsys.readouterr().err
    assert ".demo-abc123, mine.tif" in err and "not an output satmae wrote" in err
    assert (out / "mine.tif").read_bytes() == b"x"


def test_a_killed_export_is_cleaned_up_and_errors_name_the_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors import SafetensorError

    import satmae.models.bundle as bundle
    from satmae.models import create_model, save_bundle

    target = tmp_path / "model.safetensors"
    code = textwrap.dedent(
        """
        import os, sys
        import satmae.models.bundle as bundle
        from satmae.models import create_model, save_bundle
        real = bundle.save_file
        def save_then_die(tensors, filename, metadata=None):
            real(tensors, filename, metadata=metadata)
            os._exit(9)  # killed after the weights, before the rename
        bundle.save_file = save_then_die
        save_bundle(create_model("satmae_tiny"), sys.argv[1])
        """
    )
    killed = subprocess.run(python(code, str(target)), env=environment(), timeout=300)
    assert killed.returncode == 9 and not target.exists()
    left = sorted(p.name for p in tmp_path.iterdir())  # the lock file and the staged weights
    assert left == sorted([".model.safetensors.lock", stale_temporaries(target)[0].name])
    model = create_model("satmae_tiny")
    save_bundle(model, target)  # the rerun removes what the kill left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]

    def disk_full(tensors: object, filename: str, metadata: object = None) -> None:
        raise SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28) at "
            f'path "{filename}"'
        )

    monkeypatch.setattr(bundle, "save_file", disk_full)
    for out in (tmp_path / "other.safetensors", tmp_path / "folder"):
        with pytest.raises(OSError, match=rf"cannot write {out}: .*No space left") as caught:
            save_bundle(model, out)
        assert ".tmp" not in str(caught.value) and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_oscd_city_is_swapped_in_whole_and_a_killed_one_is_cleaned_up(tmp_path: Path) -> None:
    from satmae.bands import L1C_BANDS
    from satmae.data.readers.layouts import OSCD_IMAGES
    from satmae.prep.oscd_torchgeo import CityTask, write_city
    from tests.test_data_prep import write_product

    images = tmp_path / "oscd" / OSCD_IMAGES
    for date in (1, 2):
        write_product(images / "alpha" / f"imgs_{date}", date, 24, bands=L1C_BANDS)
    out_images = tmp_path / "torchgeo" / OSCD_IMAGES
    killed = out_images / ".alpha.abcd1234.tmp"  # what a killed conversion left
    (killed / "imgs_1_rect").mkdir(parents=True)
    task = CityTask(images, out_images, "alpha")
    holder = subprocess.Popen(
        python(
            "from satmae.io import OutputLock; import sys, time\n"
            "OutputLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)",
            str(out_images / "alpha"),
        ),
        stdout=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        busy = write_city(task)  # another process is converting alpha
        assert busy.startswith("alpha: ") and "being written by another process" in busy
    finally:
        holder.kill()
        holder.wait()
    assert write_city(task) == "written"
    assert sorted(p.name for p in out_images.iterdir()) == ["alpha"]  # staging of the kill gone
    assert sorted(p.name for p in (out_images / "alpha").iterdir()) == [
        "imgs_1_rect",
        "imgs_2_rect",
    ]
    assert write_city(task) == "exists"


def test_stats_killed_mid_write_keeps_the_old_file_and_the_rerun_works(
    demo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "stats.json"
    out.write_text('{"old": true}\n')
    code = textwrap.dedent(
        """
        import os, signal, sys
        from satmae.cli import main
        from satmae.io import atomic_path
        from satmae.normalization import BandStats

        def save_half_then_die(self, path):
            with atomic_path(path) as staging:
                staging.write_text('{"half": ')
                os.kill(os.getpid(), signal.SIGKILL)

        BandStats.save = save_half_then_die
        sys.exit(main(sys.argv[1:]))
        """
    )
    argv = ["stats", str(demo), "--out", str(out), "--quiet", "--overwrite"]
    killed = subprocess.run(python(code, *argv), env=environment(), timeout=300, check=False)
    assert killed.returncode == -9  # a real SIGKILL
    assert out.read_text() == '{"old": true}\n'
    assert main(argv) == 0
    assert json.loads(out.read_text())["format"] == "satmae-stats"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.json"]
