"""Bad input at the edge (issue 13): every numeric arch field refuses NaN and infinities, in the
YAML and through sweep overrides; the CLI answers with one line and exit code 2."""

import math

import pytest
import yaml

from earlyq_sim.errors import UserError
from earlyq_sim.simulator.cost.arch import ARCH_DIR, list_archs, load_arch
from earlyq_sim.workloads.sweeps.spec import apply_overrides


def _numeric_paths(d, prefix=()):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _numeric_paths(v, prefix + (k,))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            yield prefix + (k,)


CASES = [(name, path) for name in list_archs()
         for path in _numeric_paths(yaml.safe_load((ARCH_DIR / f"{name}.yaml").read_text()))]


def _with(name, path, value):
    data = yaml.safe_load((ARCH_DIR / f"{name}.yaml").read_text())
    node = data
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return data


def test_every_numeric_field_is_covered():
    fields = {p for _, p in CASES}
    assert ("clock_mhz",) in fields and ("energy", "dram_pj_per_byte") in fields and ("pe", "lanes") in fields
    assert len(CASES) >= 4 * 15


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name,path", CASES, ids=[f"{n}:{'.'.join(p)}" for n, p in CASES])
def test_non_finite_numbers_are_refused(tmp_path, name, path, value):
    f = tmp_path / "a.yaml"
    f.write_text(yaml.safe_dump(_with(name, path, value)))
    with pytest.raises(UserError) as e:
        load_arch(f)
    msg = str(e.value)
    assert str(f) in msg and ".".join(path) in msg and "\n" not in msg


def test_huge_integers_are_refused(tmp_path):
    f = tmp_path / "a.yaml"
    f.write_text(yaml.safe_dump(_with("stripes", ("clock_mhz",), 10 ** 400)))
    with pytest.raises(UserError, match=r"clock_mhz: 1{1}0{19}\.\.\. is out of range"):
        load_arch(f)


@pytest.mark.parametrize("path,yaml_field", [("clock_mhz", "clock_mhz"), ("dram_bytes_per_cycle", "dram.bytes_per_cycle"),
                                             ("buffers.ifmap_kib", "buffers.ifmap_kib"),
                                             ("energy.step_pj", "energy.step_pj")])
def test_non_finite_sweep_overrides_are_refused(path, yaml_field):
    with pytest.raises(UserError, match=rf"sweep\.yaml: overrides\.{yaml_field}: nan is not a finite number"):
        apply_overrides(load_arch("stripes"), [(path, math.nan)], "sweep.yaml")


def test_cli_bad_arch_is_one_line_exit_2(tmp_path, run_cli):
    f = tmp_path / "a.yaml"
    f.write_text(yaml.safe_dump(_with("stripes", ("clock_mhz",), math.nan)))
    topo = tmp_path / "l.csv"
    topo.write_text("Layer,M,N,K\nfc,8,8,8\n")
    code, out, err = run_cli(["run", "--arch", str(f), "--model", str(topo)])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "clock_mhz: nan is not a finite number" in err and "Traceback" not in err


@pytest.mark.parametrize("args,words", [
    (["run", "--arch", "stripes", "--steps", "0"], ["--steps", "1<=x<=10000"]),          # was: the default steps
    (["run", "--arch", "stripes", "--steps", "1000000000"], ["--steps", "1<=x<=10000"]),  # was: MemoryError
    (["run", "--arch", "stripes", "--schedule", " "], ["--schedule", "empty"]),           # was: the default schedule
    (["run", "--arch", "stripes", "--batch", "100000000000"], ["--batch", "1<=x<=4096"]),
    (["run", "--arch", "stripes", "--boundary", "nan"], ["--boundary", "finite number in [0, 1]"]),
    (["sample", "--out", "X", "--seed", "-1"], ["--seed", "0<=x<=4294967295"]),          # was: a traceback
    (["sample", "--out", "X", "--eta", "nan"], ["--eta", "finite"]),                      # was: black images
    (["search", "--threshold", "nan", "--out", "X"], ["--threshold", "finite"]),          # was: a 'found' schedule
    (["search", "--threshold", "1", "--grid", "0", "--out", "X"], ["--grid", "(0, 1]"]),  # was: ZeroDivisionError
    (["run", "--arch", "stripes", "--no-such-option"], ["--no-such-option"]),
    (["run", "--arch", "stripes", "--model", "ddpm-cifar10", "--no-quality", "--keep", "cnv_out"],
     ["'cnv_out' matches no layer"]),                                                     # was: held nothing, silently
])
def test_options_are_checked_at_the_edge(args, words, run_cli):
    code, out, err = run_cli(args)
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], (w, lines[0])


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))


@pytest.mark.parametrize("loader", ["arch", "sweep"])
@pytest.mark.parametrize("content,match", [
    (b"name: x\nclock_mhz: \xff\xfe\n", r"not UTF-8 text \(byte 0xff at offset 19\)"),
    (BOMB.encode(), r"line 2: YAML aliases \(\*name\) are not allowed"),
    (("a:\n" + "".join(" " * (i + 1) + "- \n" for i in range(40))).encode(), r"nested deeper than 32 levels"),
    (b"name: x\nclock_mhz: 1000\nclock_mhz: 500\n", r"line 3: key 'clock_mhz' given twice \(first on line 2\)"),
    (b"# " + b"x" * (1 << 20) + b"\n", r"bytes; allowed a spec file of at most 1048576 bytes"),
    (b"name: [unclosed\n", r"not valid YAML"),
])
def test_spec_files_are_read_within_limits(tmp_path, loader, content, match):
    """A non-UTF-8 file, an alias bomb, deep nesting, a duplicate key, a huge file: each a one-line
    error naming the file (they were a UnicodeDecodeError, a MemoryError after a minute, a
    RecursionError, a silently lost value, and memory)."""
    from earlyq_sim.workloads.sweeps.spec import load_sweep
    f = tmp_path / "spec.yaml"
    f.write_bytes(content)
    with pytest.raises(UserError, match=match) as e:
        (load_arch if loader == "arch" else load_sweep)(f)
    msg = str(e.value)
    assert msg.startswith(str(f)) and "\n" not in msg and len(msg) < 300


def test_a_400_digit_integer_is_a_short_error(tmp_path):
    f = tmp_path / "a.yaml"
    f.write_text(yaml.safe_dump(_with("stripes", ("array", "rows"), 10 ** 400)))
    with pytest.raises(UserError, match=r"array\.rows: 1{1}0{19}\.\.\. is out of range; allowed integer in 1\.\.4096") as e:
        load_arch(f)
    assert len(str(e.value)) < 200


def test_unknown_arch_or_model_fails_before_torch_is_imported():
    """Checked before the tracer (and torch) load: the error came after 5-8 s of imports."""
    import subprocess
    import sys
    code = ("import sys\nfrom earlyq_sim.cli import main\n"
            "try:\n    main(['run', '--arch', sys.argv[1], '--model', sys.argv[2]])\n"
            "except SystemExit as e:\n    print('exit', e.code, 'torch' in sys.modules, 'pandas' in sys.modules)\n")
    for arch, model in (("nope", "sd-v1.5"), ("stripes", "nomodel")):
        r = subprocess.run([sys.executable, "-c", code, arch, model], capture_output=True, text=True, timeout=120)
        assert r.stdout.strip() == "exit 2 False False", (r.stdout, r.stderr)
        assert (arch if arch == "nope" else model) in r.stderr


@pytest.mark.parametrize("field,value", [("sample_size", "64"), ("sample_size", None), ("sample_size", [8]),
                                         ("sample_size", 0), ("sample_size", -4), ("sample_size", True),
                                         ("sample_size", 1 << 20), ("in_channels", "3"), ("in_channels", 0),
                                         ("in_channels", False), ("in_channels", [3])])
def test_user_model_config_fields_are_checked(tmp_path, field, value):
    """A user's config.json with a string, null, list, zero, negative, boolean or huge size was a
    traceback (or, huge, an int64 overflow: negative GMACs); now a one-line error naming the field."""
    import json

    from earlyq_sim.models.registry import resolve_model
    cfg = {"_class_name": "UNet2DModel", "sample_size": 8, "in_channels": 3, field: value}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match=rf"config\.json: field '{field}' is .*; allowed"):
        resolve_model(str(tmp_path))


@pytest.mark.parametrize("index,match", [
    ('{"weight_map": {"a": "../outside.safetensors"}}', r"shard '\.\./outside\.safetensors' is not a \.safetensors file in"),
    ('{"weight_map": {"a": "/etc/passwd"}}', r"shard '/etc/passwd' is not"),
    ('{"weight_map": {"a": 3}}', r"shard 3 is not"),
    ('{"weight_map": []}', r"not a safetensors index"),
    ('not json', r"not a safetensors index \(JSONDecodeError\)"),
])
def test_a_sharded_index_cannot_point_outside_the_model_folder(tmp_path, index, match):
    import json

    from earlyq_sim.models.loader import load_unet
    (tmp_path / "outside.safetensors").write_bytes(b"")
    d = tmp_path / "unet"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", "sample_size": 8, "in_channels": 3,
                                               "out_channels": 3, "block_out_channels": [8, 16],
                                               "down_block_types": ["DownBlock2D", "DownBlock2D"],
                                               "up_block_types": ["UpBlock2D", "UpBlock2D"], "norm_num_groups": 4,
                                               "layers_per_block": 1}))
    (d / "diffusion_pytorch_model.safetensors.index.json").write_text(index)
    with pytest.raises(UserError, match=match):
        load_unet(str(d))


# --- output paths are checked before any work -------------------------------------------------
def _out_cases():
    """(command args with {out}, kind of --out) for every command that writes."""
    return [
        (["run", "--arch", "stripes", "--model", "ddpm-cifar10", "--out", "{out}"], "dir"),
        (["sample", "--n", "1", "--out", "{out}"], "dir"),
        (["calibrate", "--n", "1", "--out", "{out}"], "file"),
        (["search", "--threshold", "5", "--out", "{out}"], "dir"),
        (["export", "--model", "ddpm-cifar10", "--format", "zigzag", "--out", "{out}"], "dir"),
        (["trace", "--model", "ddpm-cifar10", "--out", "{out}"], "dir"),
        (["sweep", "{spec}", "--out", "{out}"], "dir"),
    ]


# a folder output may not be a file and a file output may not be a folder; neither may sit under a file
OUT_CASES = [(args, kind, bad) for args, kind in _out_cases()
             for bad in (("is_file", "under_file") if kind == "dir" else ("is_dir", "under_file"))]


@pytest.mark.parametrize("args,kind,bad", OUT_CASES, ids=[f"{a[0]}-{b}" for a, _, b in OUT_CASES])
def test_an_unusable_out_path_is_refused_before_any_work(tmp_path, run_cli, monkeypatch, args, kind, bad):
    import earlyq_sim.models.loader as loader
    import earlyq_sim.simulator.cost.tracer as tracer

    def no_work(*a, **k):
        raise AssertionError("work started before --out was checked")

    monkeypatch.setattr(loader, "load_unet", no_work)
    monkeypatch.setattr(tracer, "trace_model", no_work)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = {"is_file": blocker, "under_file": blocker / "sub", "is_dir": tmp_path}[bad]
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"models": ["ddpm-cifar10"], "archs": ["stripes"], "schedules": ["W8A8"]}))
    code, _, err = run_cli([a.format(out=out, spec=spec) for a in args])
    assert code == 2, err
    # click's own path check or ours: either way one line naming --out
    assert err.startswith("error: ") and "--out" in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("spec,n", [
    ({"models": ["ddpm-cifar10"], "archs": ["stripes"], "overrides": {"array.rows": list(range(1, 101)),
      "array.cols": list(range(1, 101)), "clock_mhz": list(range(100, 301))}, "schedules": ["W8A8"]}, 2_010_000),
    ({"models": ["ddpm-cifar10"], "archs": ["stripes", "loom"], "schedules": [
        {"two_stage": {"early_bits": list(range(1, 17)), "boundary": [i / 1000 for i in range(1001)],
                       "late_bits": list(range(1, 17)), "weight_bits": list(range(1, 17))}}]}, 2 * 16 ** 3 * 1001),
])
def test_a_grid_above_the_point_limit_is_refused_before_building_it(tmp_path, run_cli, spec, n):
    import time

    from earlyq_sim.workloads.sweeps.spec import grid_size, parse_sweep

    assert grid_size(spec) == n
    t0 = time.perf_counter()
    with pytest.raises(UserError, match=rf"<dict>: the grid has {n:,} points, above the limit of 1,000,000; "
                                        rf"allowed: fewer values, or pass --max-points {n}"):
        parse_sweep(spec)
    assert time.perf_counter() - t0 < 5  # counted, not built (building takes minutes)
    p = tmp_path / "big.yaml"
    p.write_text(yaml.safe_dump(spec))
    code, _, err = run_cli(["sweep", str(p), "--out", str(tmp_path / "o"), "--max-points", "10"])
    assert code == 2 and "above the limit of 10;" in err and err.count("\n") == 1
