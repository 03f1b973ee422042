"""Audio in and out: files, devices and sinks; import the module you need (nothing is re-exported here)."""
