"""Bundled data files of minicam (installed as the package ``minicam.data``).

See README.md in this folder for each file's source, licence and the command
that rebuilds it.
"""
