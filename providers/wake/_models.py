"""The wake-word models as catalogue entries, so Settings → Activation lists them with
their licence and state like every other stage's models.

Both libraries ship their models inside their wheels; the detectors load them from the
folder `resolve_model` answers (the package's, found without importing it, or a copy
downloaded into the model cache), so what the manager shows is what the detector uses."""

from __future__ import annotations

from collections.abc import Mapping

from app.plugin.model_spec import ModelFile, ModelOption, ModelPackage, ModelSpec


def wake_models(  # noqa: PLR0913 - keyword-only parts of one package's models
    *,
    provider: str,
    package: tuple[str, str],
    phrases: Mapping[str, str],
    files: Mapping[str, Mapping[str, str]],
    urls: Mapping[str, str],
    licence: str,
    approx_mb: int,
) -> tuple[ModelSpec, ...]:
    """One spec per phrase: id `<provider>-<phrase>`, `files[phrase]` = {file name: the
    sha256 it has in the wheel}, `urls[name]` = where upstream publishes that file; the
    spec's main file is the first one named (what the library is handed); `approx_mb`
    rounds a download up to whole MB."""
    distribution, module = package
    specs = []
    for phrase, said in phrases.items():
        shipped = files[phrase]
        specs.append(
            ModelSpec(
                id=f"{provider}-{phrase}",
                kind="wake",
                description=f"Wake word “{said}”",
                # Upstream's copies are not hashed offline: a download records what it got.
                files=tuple(ModelFile(name, urls[name]) for name in shipped),
                licence=licence,
                main=next(iter(shipped)),
                approx_mb=approx_mb,
                package=ModelPackage(distribution, module=module, folder="models", sha256=dict(shipped)),
            )
        )
    return tuple(specs)


def wake_option(provider: str, default: str) -> ModelOption:
    """The `phrase` option names the model: "hey_mycroft" is `<provider>-hey_mycroft`."""
    return ModelOption("phrase", default=default, id_prefix=f"{provider}-", bare_values=True)
