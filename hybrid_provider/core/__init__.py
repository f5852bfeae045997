"""The quantum core: planning, running one batch, reconstruction. Imports no Airflow.

The data flow reads in the sub-packages' names: ``cut`` (plan the cuts, write the
subexperiments and the manifest), ``execute`` (run one batch), ``reconstruct`` (combine the
batch results into expectation values with standard errors).
"""
