"""TensorBoard event files written without TensorFlow: TFRecord framing (length and masked
CRC-32C) around Event protocol buffers encoded by hand, the few fields scalars and the
hparams plugin's session records use."""

import socket
import struct
import time
from collections.abc import Mapping
from pathlib import Path

_CASTAGNOLI = 0x82F63B78


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CASTAGNOLI if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """TFRecord's checksum: CRC-32C rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return (
        length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))
    )


# protocol buffer wire format


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64s as ten bytes, as protobuf does
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _int(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(value)


def _double(field: int, value: float) -> bytes:
    return _key(field, 1) + struct.pack("<d", value)


def _float(field: int, value: float) -> bytes:
    return _key(field, 5) + struct.pack("<f", value)


def _bytes(field: int, value: bytes) -> bytes:
    return _key(field, 2) + _varint(len(value)) + value


def _text(field: int, value: str) -> bytes:
    return _bytes(field, value.encode())


def _event(*, wall_time: float, step: int = 0, body: bytes) -> bytes:
    """tensorflow.Event: wall_time 1, step 2, then file_version 3 or summary 5."""
    return _double(1, wall_time) + _int(2, step) + body


def _scalar(tag: str, value: float) -> bytes:
    """Summary.Value: tag 1, simple_value 2."""
    return _text(1, tag) + _float(2, value)


def _plugin_value(tag: str, plugin: str, content: bytes) -> bytes:
    """Summary.Value with metadata 9 = SummaryMetadata{plugin_data 1 = {plugin_name 1,
    content 2}}."""
    plugin_data = _text(1, plugin) + _bytes(2, content)
    return _text(1, tag) + _bytes(9, _bytes(1, plugin_data))


def _proto_value(value: float | str | bool) -> bytes:
    """google.protobuf.Value: number_value 2, string_value 3, bool_value 4."""
    if isinstance(value, bool):
        return _int(4, int(value))
    if isinstance(value, int | float):
        return _double(2, float(value))
    return _text(3, str(value))


STATUS = {"unknown": 0, "success": 1, "failure": 2, "running": 3}


class EventFile:
    """One run's event file in its directory: scalars by step, and its hyperparameters."""

    def __init__(self, directory: Path, *, wall_time: float | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        start = time.time() if wall_time is None else wall_time
        self.path = directory / f"events.out.tfevents.{int(start)}.{socket.gethostname()}"
        self.file = self.path.open("wb")
        self.write(_event(wall_time=start, body=_text(3, "brain.Event:2")))

    def write(self, event: bytes) -> None:
        self.file.write(tfrecord(event))

    def scalars(self, step: int, values: Mapping[str, float], *, wall_time: float) -> None:
        """One event of every scalar at this step."""
        summary = b"".join(_bytes(1, _scalar(tag, v)) for tag, v in values.items())
        self.write(_event(wall_time=wall_time, step=step, body=_bytes(5, summary)))

    def hparams(self, values: Mapping[str, float | str | bool], *, start: float) -> None:
        """The hparams plugin's session_start_info: HParamsPluginData{version 1,
        session_start_info 3 = {hparams 1 (a map), start_time_secs 5}}."""
        entries = b"".join(
            _bytes(1, _text(1, name) + _bytes(2, _proto_value(value)))
            for name, value in values.items()
        )
        content = _int(1, 0) + _bytes(3, entries + _double(5, start))
        self._plugin("_hparams_/session_start_info", content, wall_time=start)

    def session_end(self, status: str, *, end: float) -> None:
        """HParamsPluginData{session_end_info 4 = {status 1, end_time_secs 2}}."""
        content = _int(1, 0) + _bytes(4, _int(1, STATUS[status]) + _double(2, end))
        self._plugin("_hparams_/session_end_info", content, wall_time=end)

    def _plugin(self, tag: str, content: bytes, *, wall_time: float) -> None:
        summary = _bytes(1, _plugin_value(tag, "hparams", content))
        self.write(_event(wall_time=wall_time, body=_bytes(5, summary)))

    def close(self) -> None:
        self.file.close()
