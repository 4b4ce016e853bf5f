"""Getting a person onto a partition: cluster reader, request model, form, batch script, spawner."""
