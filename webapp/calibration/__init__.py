"""Transducer database and calibration checks, shared by the dashboard and the terminal.

* :mod:`.database` — every transducer by type and serial with its calibration history, one
  validation for HTTP, CLI and CSV import, kept in ``<data_dir>/transducers.json``;
* :mod:`.measure` — the reference a calibrator or shaker produces, and the sensitivity and
  deviation a measured tone gives (no I/O);
* :mod:`.acquire` — a short single-module measurement of one channel, in volts.
"""
