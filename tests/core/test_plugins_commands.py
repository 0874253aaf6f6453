"""Sub-commands from plugins: the ``zsadbench.commands`` entry-point group (FineGrainedAD's ``captions`` comes this way)."""
from __future__ import annotations

from plugin_distributions import write_distribution, zsadbench

COMMAND = '''
HELP = "say hello from a plugin"


def add_arguments(parser):
    parser.add_argument("--name", default="world")


def execute(args):
    print(f"hello {args.name}")
    return 3
'''


def test_a_plugin_adds_a_sub_command_with_its_help_and_exit_status(tmp_path):
    write_distribution(tmp_path, "zsad-hello", "zsad_hello", COMMAND, {"zsadbench.commands": {"hello": "zsad_hello"}})
    listing = zsadbench(tmp_path, "--help")
    assert "hello" in listing.stdout and "say hello from a plugin" in listing.stdout
    assert "captions" in listing.stdout  # the built-in method's command, through the same group
    result = zsadbench(tmp_path, "hello", "--name", "zsad")
    assert result.returncode == 3 and result.stdout.strip() == "hello zsad"
    hidden = zsadbench(tmp_path, "--help", env={"ZSADBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "say hello" not in hidden.stdout and "captions" in hidden.stdout


def test_a_broken_or_clashing_plugin_command_is_left_out_with_one_line_naming_its_distribution(tmp_path):
    write_distribution(tmp_path, "zsad-broken", "zsad_broken", "raise ImportError('no such thing')\n",
                       {"zsadbench.commands": {"broken": "zsad_broken"}})
    write_distribution(tmp_path, "zsad-clash", "zsad_clash", COMMAND, {"zsadbench.commands": {"run": "zsad_clash"}})
    result = zsadbench(tmp_path, "list")
    assert result.returncode == 0, result.stderr
    assert "'broken' from zsad-broken cannot be loaded (ImportError: no such thing)" in " ".join(result.stderr.split())
    assert "'run' from zsad-clash is already taken" in " ".join(result.stderr.split())
