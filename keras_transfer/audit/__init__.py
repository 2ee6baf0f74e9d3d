"""Auditing a dataset before training: exact and near duplicates, leakage across splits, likely
label errors, damaged and odd files, class balance.

The checks reuse what training has: the content hashes and feature cache of the engine, and the
linear head's out-of-fold probabilities, fed to cleanlab and cleanvision. An audit reads the
data folder and never writes, moves or deletes anything in it.
"""

from keras_transfer.audit.clean import write_clean
from keras_transfer.audit.core import KINDS, AuditResult, audit, cheap_audit, full_audit

__all__ = ["KINDS", "AuditResult", "audit", "cheap_audit", "full_audit", "write_clean"]
