"""Output shapes and parameter counts of a Keras 3 Sequential model from its saved config alone.

Quick mode reads the layer table of the model a run left. Keras can only tell it after `import tensorflow`
(seconds of CPU, in a second process beside the student's own import), although for the models courses
build, a stack of Conv2D, pooling, Dense and shape-keeping layers, the table follows from the config by
the rules below (Keras's own `compute_output_shape` arithmetic). `table` applies them and checks every
layer's parameter count against the variables stored in the weights file; a layer or setting beyond
these rules, or any count that disagrees, gives None and the evaluator loads the model with Keras as
before. Plain arithmetic on JSON: nothing of the model runs.

Part of the trusted evaluator (runs in the evaluation sandbox, imports nothing of the harness).
"""

SHAPE_KEEPING = {
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
    "AlphaDropout", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Rescaling", "ActivityRegularization",
    "Identity", "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast",
    "RandomBrightness",
}


# The settings Keras 3 writes for each layer (get_config); Keras refuses a layer with a setting it does not
# take, so a config with any other one is left to Keras
_DROPOUT = {"rate", "seed", "noise_shape", "data_format"}
_RANDOM = {"data_format", "seed", "factor", "value_range", "mode", "fill_mode", "fill_value", "interpolation",
           "height_factor", "width_factor"}
_CONV = {"filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "groups", "activation",
         "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer",
         "activity_regularizer", "kernel_constraint", "bias_constraint"}
_DENSE = {"units", "activation", "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer",
          "bias_regularizer", "kernel_constraint", "bias_constraint", "quantization_config", "activity_regularizer",
          "lora_rank", "lora_alpha"}
_NORM = {"axis", "momentum", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer",
         "moving_mean_initializer", "moving_variance_initializer", "beta_regularizer", "gamma_regularizer",
         "beta_constraint", "gamma_constraint", "renorm", "renorm_clipping", "renorm_momentum", "synchronized"}
_POOL = {"pool_size", "strides", "padding", "data_format"}
_RESIZE = {"height", "width", "interpolation", "crop_to_aspect_ratio", "pad_to_aspect_ratio", "fill_mode",
           "fill_value", "antialias", "data_format"}
SETTINGS = {kind: {"name", "dtype", "trainable"} | extra for kind, extra in {
    "InputLayer": {"batch_shape", "batch_input_shape", "sparse", "ragged", "optional"},
    "Conv2D": _CONV | {"lora_rank", "lora_alpha"}, "Dense": _DENSE, "BatchNormalization": _NORM,
    "MaxPooling2D": _POOL, "AveragePooling2D": _POOL, "GlobalAveragePooling2D": {"data_format", "keepdims"},
    "GlobalMaxPooling2D": {"data_format", "keepdims"}, "Flatten": {"data_format"}, "Reshape": {"target_shape"},
    "ZeroPadding2D": {"padding", "data_format"}, "Resizing": _RESIZE,
    "Dropout": _DROPOUT, "SpatialDropout1D": _DROPOUT, "SpatialDropout2D": _DROPOUT, "SpatialDropout3D": _DROPOUT,
    "GaussianNoise": {"stddev", "seed"}, "GaussianDropout": _DROPOUT, "AlphaDropout": _DROPOUT,
    "Activation": {"activation"}, "ReLU": {"max_value", "negative_slope", "threshold"},
    "LeakyReLU": {"negative_slope"}, "ELU": {"alpha"}, "Softmax": {"axis"}, "Rescaling": {"scale", "offset"},
    "ActivityRegularization": {"l1", "l2"}, "Identity": set(), "RandomFlip": _RANDOM, "RandomRotation": _RANDOM,
    "RandomZoom": _RANDOM, "RandomTranslation": _RANDOM, "RandomContrast": _RANDOM, "RandomBrightness": _RANDOM,
}.items()}


class Unknown(Exception):
    """Beyond these rules: Keras itself must read the model."""


def _pair(value, name):
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:  # Keras refuses a window <= 0
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        return int(value[0]), int(value[1])
    raise Unknown(f"{name} {value!r}")


def _spatial(size, window, stride, padding):
    """Keras's compute_conv_output_shape / compute_pooling_output_shape for one dimension."""
    if size is None:
        return None
    if padding == "valid":
        out = (size - window) // stride + 1
    elif padding == "same":
        out = (size - 1) // stride + 1
    else:
        raise Unknown(f"padding {padding!r}")
    if out <= 0:
        raise Unknown("no output left")
    return out


def _channels_last(conf):
    if conf.get("data_format", "channels_last") not in ("channels_last", None):
        raise Unknown("channels_first")


def _conv2d(conf, shape):
    _channels_last(conf)
    if len(shape) != 4 or shape[3] is None:
        raise Unknown("Conv2D input")
    if _pair(conf.get("dilation_rate", 1), "dilation") != (1, 1) or conf.get("groups", 1) != 1:
        raise Unknown("dilated or grouped convolution")
    filters = conf.get("filters")
    if not isinstance(filters, int) or isinstance(filters, bool) or filters <= 0:
        raise Unknown("filters")
    kh, kw = _pair(conf.get("kernel_size"), "kernel_size")
    sh, sw = _pair(conf.get("strides", 1), "strides")
    padding = conf.get("padding", "valid")
    out = [shape[0], _spatial(shape[1], kh, sh, padding), _spatial(shape[2], kw, sw, padding), filters]
    return out, kh * kw * shape[3] * filters + (filters if conf.get("use_bias", True) else 0)


def _pool2d(conf, shape):
    _channels_last(conf)
    if len(shape) != 4:
        raise Unknown("pooling input")
    ph, pw = _pair(conf.get("pool_size", 2), "pool_size")
    strides = conf.get("strides")
    sh, sw = (ph, pw) if strides is None else _pair(strides, "strides")
    padding = conf.get("padding", "valid")
    return [shape[0], _spatial(shape[1], ph, sh, padding), _spatial(shape[2], pw, sw, padding), shape[3]], 0


def _global_pool(conf, shape):
    _channels_last(conf)
    if len(shape) < 3:
        raise Unknown("global pooling input")
    if conf.get("keepdims", False):
        return [shape[0]] + [1] * (len(shape) - 2) + [shape[-1]], 0
    return [shape[0], shape[-1]], 0


def _flatten(conf, shape):
    _channels_last(conf)
    size = 1
    for d in shape[1:]:
        if d is None:
            raise Unknown("Flatten of an unknown size")
        size *= d
    return [shape[0], size], 0


def _dense(conf, shape):
    units = conf.get("units")
    if not isinstance(units, int) or isinstance(units, bool) or units <= 0 or len(shape) < 2 or shape[-1] is None:
        raise Unknown("Dense")
    return shape[:-1] + [units], shape[-1] * units + (units if conf.get("use_bias", True) else 0)


def _batch_norm(conf, shape):
    axis = conf.get("axis", -1)
    if axis not in (-1, len(shape) - 1) or shape[-1] is None:
        raise Unknown("BatchNormalization axis")
    per_channel = 2 + bool(conf.get("center", True)) + bool(conf.get("scale", True))
    return list(shape), per_channel * shape[-1]


def _reshape(conf, shape):
    target = conf.get("target_shape")
    if not isinstance(target, (list, tuple)) or not all(isinstance(d, int) and not isinstance(d, bool) for d in target):
        raise Unknown("Reshape target")
    target = list(target)
    if any(d is None for d in shape[1:]):
        raise Unknown("Reshape of an unknown size")
    size = 1
    for d in shape[1:]:
        size *= d
    if target.count(-1) == 1:
        rest = 1
        for d in target:
            rest *= d if d != -1 else 1
        if rest <= 0 or size % rest:
            raise Unknown("Reshape sizes")
        target[target.index(-1)] = size // rest
    known = 1
    for d in target:
        if d <= 0:
            raise Unknown("Reshape sizes")
        known *= d
    if known != size:
        raise Unknown("Reshape sizes")
    return [shape[0]] + target, 0


def _zero_padding2d(conf, shape):
    _channels_last(conf)
    padding = conf.get("padding", 1)
    if isinstance(padding, int) and not isinstance(padding, bool):
        rows = cols = (padding, padding)
    elif isinstance(padding, (list, tuple)) and len(padding) == 2 and all(isinstance(p, int) for p in padding):
        rows, cols = (padding[0], padding[0]), (padding[1], padding[1])
    elif isinstance(padding, (list, tuple)) and len(padding) == 2 and all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(v, int) for v in p) for p in padding):
        rows, cols = tuple(padding[0]), tuple(padding[1])
    else:
        raise Unknown("ZeroPadding2D padding")
    if len(shape) != 4 or min(rows + cols) < 0:
        raise Unknown("ZeroPadding2D")
    grow = lambda d, p: None if d is None else d + p[0] + p[1]  # noqa: E731
    return [shape[0], grow(shape[1], rows), grow(shape[2], cols), shape[3]], 0


def _resizing(conf, shape):
    _channels_last(conf)
    height, width = conf.get("height"), conf.get("width")
    if len(shape) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (height, width)):
        raise Unknown("Resizing")
    return [shape[0], height, width, shape[3]], 0


RULES = {
    "Conv2D": _conv2d, "MaxPooling2D": _pool2d, "AveragePooling2D": _pool2d,
    "GlobalAveragePooling2D": _global_pool, "GlobalMaxPooling2D": _global_pool, "Flatten": _flatten,
    "Dense": _dense, "BatchNormalization": _batch_norm, "Reshape": _reshape, "ZeroPadding2D": _zero_padding2d,
    "Resizing": _resizing,
}


def _input_shape(layers):
    for layer in layers[:1]:
        conf = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        candidate = conf.get("batch_shape") or conf.get("batch_input_shape")
        if candidate is None and isinstance(layer.get("build_config"), dict):
            candidate = layer["build_config"].get("input_shape")
        if isinstance(candidate, list) and len(candidate) >= 2 and all(
                d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0) for d in candidate):
            return [None] + list(candidate[1:])
    raise Unknown("no input shape")


def shapes(config):
    """[(class name, output shape, parameters)] of the layers of a Sequential config (InputLayer left out)."""
    if not isinstance(config, dict) or config.get("class_name") != "Sequential" or config.get("module") != "keras":
        raise Unknown("not a Keras 3 Sequential model")
    inner = config.get("config")
    layers = inner.get("layers") if isinstance(inner, dict) else None
    if not isinstance(layers, list) or not layers or not all(isinstance(layer, dict) for layer in layers):
        raise Unknown("no layers")
    shape = _input_shape(layers)
    out = []
    for layer in layers:
        kind = layer.get("class_name")
        conf = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        if layer.get("module") != "keras.layers" or layer.get("registered_name") not in (None, kind):
            raise Unknown(f"a layer from {layer.get('module')!r}")
        if not set(conf) <= SETTINGS.get(kind, set()) or not isinstance(conf.get("name", ""), str):
            raise Unknown(f"a setting Keras does not take for {kind!r}")
        if not isinstance(conf.get("trainable", True), bool):  # the table reads it two ways otherwise
            raise Unknown("trainable flag")
        if conf.get("renorm"):  # batch renormalisation: variables beyond the rules
            raise Unknown("renorm")
        if conf.get("lora_rank"):  # Keras counts the adapter's variables; the weights file holds none
            raise Unknown("LoRA")
        if kind == "InputLayer":
            if out:
                raise Unknown("InputLayer after a layer")
            continue
        if kind in SHAPE_KEEPING:
            shape, params = list(shape), 0
        elif kind in RULES:
            shape, params = RULES[kind](conf, list(shape))
        else:
            raise Unknown(f"layer {kind!r}")
        out.append((kind, shape, params))
    return out


def table(described, config):
    """The evaluator's archive table (`predict.describe_archive`: names, settings, parameters from the weights
    file) completed with output shapes, or None when Keras must read the model: a layer beyond the rules, or
    a parameter count that disagrees with the stored variables."""
    try:
        found = shapes(config)
    except (Unknown, TypeError, ValueError, OverflowError):
        return None
    rows = described.get("layers") if isinstance(described, dict) else None
    if not isinstance(rows, list) or len(rows) != len(found) or described.get("total_params") is None:
        return None
    for row, (kind, _, params) in zip(rows, found):
        if row.get("type") != kind or row.get("params") != params:
            return None
    if sum(params for _, _, params in found) != described["total_params"]:
        return None
    layers = [{**row, "output_shape": shape} for row, (_, shape, _) in zip(rows, found)]
    return {**described, "layers": layers, "input_shape": described.get("input_shape") or _input_shape(
        config["config"]["layers"])}
