"""Plots for the analyst notebooks and the dashboards.

``workbench.viz.data`` computes the numbers (pandas DataFrames, vectorized queries);
``workbench.viz.figures`` turns those frames into plotly figures. Notebooks and dashboards
only call these two modules.
"""

from workbench.viz import data, figures

__all__ = ["data", "figures"]
