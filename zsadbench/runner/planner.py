"""Building a :class:`Plan` from a :class:`RunConfig`: resolve plugins and data, expand the cells."""
from __future__ import annotations

import functools

from dataclasses import dataclass, field

from .. import registry
from ..config import MethodConfig
from ..errors import ConfigError, DataError
from ..method import Method, fit_kind, trains_then_adapts
from ..store.manifest import Draw, DrawKey, describe_key, load_replay
from .identity import WeightsSpec, index_digest
from .plan import Cell, FitGroup, RunConfig, auxiliary_for, check_overrides_used, override_variants
from .subset import apply_subset
from zsadbench.datasets.base import DatasetAdapter
from zsadbench.datasets.roots import resolve_root


@dataclass(frozen=True)
class MethodSpec:
    """A selected method variant, resolved once for the whole run: its class, its (overridden) config, display
    label, weights and precision. The worker builds every instance of the variant from it and the store
    records it."""

    name: str
    cls: type[Method]
    config: MethodConfig
    label: str
    weights: WeightsSpec
    precision: str
    key: str = ""

    @property
    def version(self) -> str:
        return str(getattr(self.cls, "version", "1"))


@dataclass
class Plan:
    """Resolved methods and adapters, and the cells grouped by shared fit."""

    config: RunConfig
    methods: dict[str, MethodSpec]
    adapters: dict[str, DatasetAdapter]
    auxiliaries: dict[str, DatasetAdapter]
    groups: list[FitGroup]
    notes: list[str] = field(default_factory=list)
    replay: dict[DrawKey, Draw] | None = None

    @property
    def cells(self) -> list[Cell]:
        return [c for g in self.groups for c in g.cells]

    def spec_of(self, group: FitGroup) -> MethodSpec:
        """The method variant a fit group runs."""
        return self.methods[group.spec_key]

    @functools.cached_property
    def _specs_by_identity(self) -> dict[tuple[str, str], MethodSpec]:
        return {(s.name, s.config.config_hash()): s for s in self.methods.values()}

    def spec_for(self, cell: Cell) -> MethodSpec:
        """The method variant a cell belongs to."""
        return self._specs_by_identity[(cell.method, cell.config_hash)]

    def describe(self, cell: Cell) -> str:
        """:meth:`Cell.describe` with the variant (``[gain=2]``) when the run holds several of its method."""
        key = self.spec_for(cell).key
        variant = key[len(cell.method):] if key.startswith(cell.method + "[") else ""
        return cell.describe() + (f" {variant}" if variant else "")


def _adapter(name: str, data_root) -> DatasetAdapter:
    cls = registry.datasets().get(name)
    adapter = cls(resolve_root(name, data_root))
    adapter.samples  # index now, so a missing or malformed root fails before any work
    return adapter


def _method_specs(config: RunConfig, notes: list[str]) -> dict[str, MethodSpec]:
    specs = {}
    for name in config.methods:
        cls = registry.methods().get(name)
        base = cls.config_class()
        if config.pretrained == "none" and cls.random_init_overrides:
            user_set = {key.rpartition(".")[2] for key, _ in config.overrides if key.rpartition(".")[0] in ("", name)}
            demo = {k: v for k, v in cls.random_init_overrides.items() if k not in user_set}
            if demo:
                base = base.replace(**demo)
                shown = ", ".join(f"{k}={v}" for k, v in demo.items())
                notes.append(f"{name} with random weights runs its demo configuration ({shown}); --set KEY=VALUE changes it")
        label = getattr(cls, "label", "") or cls.__name__
        variants = override_variants(base, name, config.overrides)
        for choice, method_config in variants:
            suffix = ",".join(f"{k}={v}" for k, v in choice.items())
            key = f"{name}[{suffix}]" if suffix else name
            weights = WeightsSpec.resolve(cls, method_config, config.pretrained)
            specs[key] = MethodSpec(
                name, cls, method_config, f"{label} [{suffix}]" if suffix else label, weights, config.precision, key
            )
    check_overrides_used({n: s.config for n, s in specs.items()}, config.overrides, {n: s.name for n, s in specs.items()})
    return specs


def method_variants(config: RunConfig) -> tuple[dict[str, MethodSpec], list[str]]:
    """The method variants ``config`` selects, resolved as a run resolves them, and the notes that gives."""
    notes: list[str] = []
    return _method_specs(config, notes), notes


def _shots_for(spec: MethodSpec, requested: tuple[int, ...] | None, notes: list[str]) -> list[int]:
    cls = spec.cls
    if requested is None:
        return [0] if "zero-shot" in cls.settings else list(cls.shots)
    chosen = []
    for k in requested:
        try:
            fit_kind(cls, k)
        except ConfigError as exc:
            notes.append(f"skipped {k}-shot: {exc}")
            continue
        chosen.append(k)
    return chosen


def build_plan(config: RunConfig) -> Plan:
    """Resolve every method and dataset (failing early on unknown names or missing data) and expand the cells."""
    if not config.methods:
        raise ConfigError("no method selected: pass --method NAME (see `zsadbench list`)")
    if not config.datasets:
        raise ConfigError("no dataset selected: pass --datasets NAME|all|industrial|medical")
    notes: list[str] = []
    methods = _method_specs(config, notes)
    adapters = {name: _adapter(name, config.data_root) for name in config.datasets}
    if config.categories or config.limit is not None:
        apply_subset(adapters, config.categories, config.limit)
        if config.limit is not None:
            notes.append(f"--limit {config.limit}: at most {config.limit} test images per category, a smoke run "
                         "(its cells are kept apart from full ones and marked in the tables)")
    for name, adapter in adapters.items():
        for category, reason in sorted(getattr(adapter, "skipped", {}).items()):
            notes.append(f"{name}/{category}: skipped ({reason})")
    replay = load_replay(config.support_manifest) if config.support_manifest else None
    groups: list[FitGroup] = []
    auxiliaries: dict[str, DatasetAdapter] = {}
    for spec in methods.values():
        for shots in _shots_for(spec, config.shots, notes):
            learns = fit_kind(spec.cls, shots) != "none"  # a method that learns nothing is the same for every seed
            seeds = config.seeds if learns else config.seeds[:1]
            for seed in seeds:
                groups.extend(_groups(spec, shots, seed, adapters, auxiliaries, config, notes))
    if not groups:
        raise ConfigError("the plan is empty: " + ("; ".join(notes) or "nothing to run"))
    if replay is not None:
        _check_replay_covers(replay, groups, config.support_manifest)
    return Plan(config, methods, adapters, auxiliaries, groups, notes, replay)


def _check_replay_covers(replay: dict[DrawKey, Draw], groups: list[FitGroup], source: object) -> None:
    """Every few-shot group of a replayed run needs its draw in the manifest: none falls back to a random one."""
    for group in groups:
        if group.shots == 0 or group.dataset is None or group.category is None:
            continue
        key = (group.dataset, group.category, group.shots, group.seed)
        if key not in replay and key[:3] + (None,) not in replay:
            held = sorted({describe_key(k) for k in replay})
            shown = ", ".join(held[:4]) + (f" and {len(held) - 4} more" if len(held) > 4 else "")
            raise ConfigError(f"--support-manifest {source} holds no draw for {describe_key(key)} (it holds {shown}); "
                              "run only what it covers (--datasets, --shots, --seeds), or leave out "
                              "--support-manifest to draw the support at random")


def _cell(spec: MethodSpec, adapters, dataset: str, category: str, shots: int, seed: int, aux: str, config: RunConfig) -> Cell:
    adapter = adapters[dataset]
    samples = adapter.select("test", category)
    if shots > 0:
        samples = samples + adapter.select("train", category, 0)
    return Cell(
        method=spec.name, config_hash=spec.config.config_hash(), dataset=dataset, category=category, shots=shots,
        seed=seed, aux=aux, eval_size=config.eval_size, pretrained=spec.weights.tag, precision=spec.precision,
        method_version=spec.version, weights_id=spec.weights.identity, data_digest=index_digest(samples, adapter.root),
    )


def _groups(spec, shots, seed, adapters, auxiliaries, config, notes) -> list[FitGroup]:
    if shots > 0:
        groups = []
        for name, adapter in adapters.items():
            aux = _auxiliary(spec, name, auxiliaries, config, notes) if trains_then_adapts(spec.cls, shots) else ""
            for category in adapter.categories():
                available = len(adapter.select("train", category, 0))
                if available < shots:
                    notes.append(f"{name}/{category}: {available} normal training images, too few for {shots}-shot: skipped")
                    continue
                cell = _cell(spec, adapters, name, category, shots, seed, aux, config)
                groups.append(FitGroup(spec.name, seed, shots, aux, name, category, (cell,), spec.key))
        return groups
    if fit_kind(spec.cls, 0) == "none":
        cells = tuple(_cell(spec, adapters, n, c, 0, seed, "", config) for n, a in adapters.items() for c in a.categories())
        return [FitGroup(spec.name, seed, 0, "", cells=cells, variant=spec.key)]
    by_aux: dict[str, list[Cell]] = {}
    for name, adapter in adapters.items():
        aux = _auxiliary(spec, name, auxiliaries, config, notes)
        by_aux.setdefault(aux, []).extend(_cell(spec, adapters, name, c, 0, seed, aux, config) for c in adapter.categories())
    return [FitGroup(spec.name, seed, 0, aux, cells=tuple(cells), variant=spec.key) for aux, cells in by_aux.items()]


def _auxiliary(spec: MethodSpec, name: str, auxiliaries: dict[str, DatasetAdapter], config: RunConfig,
               notes: list[str]) -> str:
    """The auxiliary set ``spec`` trains on to evaluate dataset ``name`` (indexed into ``auxiliaries`` once)."""
    aux = auxiliary_for(name, config.protocol, config.aux)
    if aux == name:
        note = f"{name}: its auxiliary set is itself under this protocol; evaluation is not zero-shot"
        if note not in notes:
            notes.append(note)
    if aux not in auxiliaries:
        try:
            auxiliaries[aux] = _adapter(aux, config.data_root)
        except DataError as exc:
            raise DataError(f"{spec.name} trains on the auxiliary dataset {aux!r} to evaluate {name!r}: {exc}") from exc
    return aux
