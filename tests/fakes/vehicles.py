"""In-memory fake of the car's telematics: the codes each VIN's head unit showed, newest last."""

from __future__ import annotations

from datetime import datetime

from chalicelib.registration.ports import VehicleChannel


class FakeVehicleChannel(VehicleChannel):
    def __init__(self) -> None:
        self.shown: dict[str, list[str]] = {}

    def show_code(self, vin: str, code: str, expires_at: datetime) -> None:
        self.shown.setdefault(vin, []).append(code)

    def last_code(self, vin: str) -> str:
        """The code the head unit of ``vin`` shows now (what only someone in the car can read)."""
        return self.shown[vin][-1]
