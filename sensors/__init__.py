"""Sensors: registry sensors for sources/teachers and the automation sensor (on by default)."""

from sensors.automation import AUTOMATION, automation
from sensors.registry import settings_observer, source_registry, teacher_registry

ALL_SENSORS = [source_registry, teacher_registry, settings_observer, automation]
