#!/usr/bin/env python3
"""Runs a command and writes the CPU seconds (user + system) it used to a file.

Usage: child_cpu.py OUTPUT_FILE COMMAND [ARGS...]
Standard input and output pass through; the exit status is the command's.
"""
import resource
import subprocess
import sys

output, command = sys.argv[1], sys.argv[2:]
status = subprocess.run(command).returncode
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(output, "w") as out:
    out.write(f"{usage.ru_utime + usage.ru_stime:.2f}\n")
sys.exit(status)
