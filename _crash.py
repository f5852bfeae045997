import multiprocessing, sys
from benchmarks import wide
def go(i):
    return wide._measured_in_child(wide.reference, wide.FULL_CASES[int(sys.argv[1])])["max_bond_dimension"]
if __name__ == "__main__":
    for i in range(int(sys.argv[2])):
        ctx = multiprocessing.get_context("spawn")
        p = ctx.Process(target=go, args=(i,)); p.start(); p.join(); print(i, p.exitcode, flush=True)
