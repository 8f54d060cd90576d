"""Sensors: registry sensors for sources/teachers and the automation sensor (on by default)."""

import dagster as dg

from sensors.registry import settings_observer, source_registry, teacher_registry

automation = dg.AutomationConditionSensorDefinition(
    "automation", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30, description="Requests the partitions whose inputs, code or config changed.")

ALL_SENSORS = [source_registry, teacher_registry, settings_observer, automation]
