import Autograd
print(BLAS.summary)
