"""Cut: plan the cuts, generate the distinct subexperiments, write the job to the store."""

#: Plans beyond this many coefficients are refused: 6 cut CX gates (6**6 = 46,656) still pass.
#: Each cut multiplies the coefficients (and the circuits to build) by up to 8 and the shots
#: needed by 9 to 16, so a bigger plan is a sign the limit or the partition is wrong.
#: Kept here, free of Qiskit imports, so DAG files can name it cheaply.
DEFAULT_MAX_COEFFICIENTS = 50_000
