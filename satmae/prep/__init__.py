"""Recipes that turn source datasets into chip stores: ``satmae prep RECIPE`` and ``data_prep/``.

One module per source: :mod:`.s2_scenes` (Sentinel-2 scene folders or index tables),
:mod:`.fmow_sentinel` (fMoW-Sentinel CSVs), :mod:`.ssl4eo_s12` (SSL4EO-S12 seasons) and
:mod:`.oscd_torchgeo` (OSCD into torchgeo's layout); :mod:`.chips` cuts the gathered locations
into parts, in this process or on dask; :mod:`.options` holds the command-line options the
recipes share. ``satmae prep`` (:mod:`satmae.cli.prep`) and the scripts in ``data_prep/`` run
the same functions.
"""
