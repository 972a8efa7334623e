"""The one module that touches the backend directly: selection, determinism, GPU memory."""

import os
import platform
from functools import cache
from typing import Any

from core.settings import Settings

_state: dict[str, Any] = {"deterministic": False}


@cache
def configure_backend(backend: str, deterministic: bool) -> str:
    """Select the Keras backend before Keras is imported; make TensorFlow deterministic."""
    os.environ.setdefault("KERAS_BACKEND", backend)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    active: str = keras.backend.backend()
    if active == "tensorflow":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
        if deterministic:
            tf.config.experimental.enable_op_determinism()
            _state["deterministic"] = True
    return active


def configure(settings: Settings) -> str:
    return configure_backend(settings.keras_backend, settings.deterministic_ops)


def describe_environment() -> dict[str, Any]:
    """Backend, versions and device: runs on different stacks are not like for like."""
    import keras

    env: dict[str, Any] = {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "python": platform.python_version(),
        "device": "cpu",
    }
    if env["backend"] == "tensorflow":
        import tensorflow as tf

        env["tensorflow"] = tf.__version__
        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(
                tf.config.list_physical_devices("GPU")[0]
            )
            env["device"] = f"gpu:{details.get('device_name', gpus[0].name)}"
        env["op_determinism"] = _state["deterministic"]
    elif env["backend"] == "jax":
        import jax

        env["jax"] = jax.__version__
        device = jax.devices()[0]
        env["device"] = f"{device.platform}:{getattr(device, 'device_kind', device)}"
    return env


def visible_gpus() -> list[str]:
    """The GPUs the active backend can train on (after `configure_backend`)."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [device.name for device in tf.config.list_physical_devices("GPU")]
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform in ("gpu", "cuda", "rocm")]
    return []


if __name__ == "__main__":
    # `python -m worker.backend`: what the configured backend sees, as one JSON line. The
    # worker asks this in a child process, so the Celery parent never imports the backend
    # before it forks its pool.
    import json

    from core.settings import get_settings

    active = configure(get_settings())
    print(json.dumps({"backend": active, "gpus": visible_gpus()}))
