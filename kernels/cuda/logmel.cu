// kernels/cuda/logmel.cu - Whisper's front end on the GPU: the power
// spectrum of windowed frames (cuFFT, batched real-to-complex) and the mel
// projection with the log10 floor (cuBLAS GEMM in fp32 whatever the
// context's precision, then one elementwise kernel). CPU argument order
// plus a stream; every pointer a device pointer.
//
// The cuFFT plan and its complex buffer are cached for the last (n_fft,
// frame count) seen, under a mutex (the op may be called from several host
// threads, like the CPU ops).
#include <cufft.h>
#include <cuda_runtime.h>
#include <math.h>
#include <pthread.h>

#include "kernels/cuda/common.cuh"

static pthread_mutex_t kiln_fft_lock_ = PTHREAD_MUTEX_INITIALIZER;
static cufftHandle kiln_fft_plan_;
static int kiln_fft_n_, kiln_fft_T_;
static cufftComplex *kiln_fft_buf_;

__global__ static void kiln_power_kernel_(float *power, const cufftComplex *spec, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        power[i] = spec[i].x * spec[i].x + spec[i].y * spec[i].y;
}

__global__ static void kiln_log10_floor_kernel_(float *x, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] = log10f(fmaxf(x[i], 1e-10f));
}

static unsigned kiln_lm_grid_(size_t n) {
    size_t g = (n + 255) / 256;
    return (unsigned)(g > 65535 ? 65535 : (g ? g : 1));
}

extern "C" void kiln_power_spectrum_cuda(float *power, const float *frames, int T, int n_fft,
                                         cudaStream_t stream) {
    if (T <= 0)
        return;
    const int F = n_fft / 2 + 1;
    pthread_mutex_lock(&kiln_fft_lock_);
    if (!kiln_fft_buf_ || kiln_fft_n_ != n_fft || kiln_fft_T_ != T) {
        if (kiln_fft_buf_) {
            cufftDestroy(kiln_fft_plan_);
            cudaFree(kiln_fft_buf_);
            kiln_fft_buf_ = NULL;
        }
        if (cufftPlan1d(&kiln_fft_plan_, n_fft, CUFFT_R2C, T) != CUFFT_SUCCESS ||
            KILN_CUDA_CHECK(cudaMalloc((void **)&kiln_fft_buf_,
                                       sizeof(cufftComplex) * (size_t)T * F))) {
            fprintf(stderr, "kiln: could not create a cuFFT plan (%d frames of %d)\n", T, n_fft);
            kiln_fft_buf_ = NULL;
            kiln_kernels_set_error_();
            pthread_mutex_unlock(&kiln_fft_lock_);
            return;
        }
        kiln_fft_n_ = n_fft;
        kiln_fft_T_ = T;
    }
    cufftSetStream(kiln_fft_plan_, stream);
    // cuFFT's R2C input is not const, though it is not written for out-of-place plans
    if (cufftExecR2C(kiln_fft_plan_, (cufftReal *)frames, kiln_fft_buf_) != CUFFT_SUCCESS) {
        fprintf(stderr, "kiln: cuFFT R2C failed\n");
        kiln_kernels_set_error_();
    } else {
        size_t n = (size_t)T * F;
        kiln_power_kernel_<<<kiln_lm_grid_(n), 256, 0, stream>>>(power, kiln_fft_buf_, n);
        KILN_CUDA_LAUNCH_CHECK();
        // the buffer is reused by the next call: finish with it under the lock
        KILN_CUDA_CHECK(cudaStreamSynchronize(stream));
    }
    pthread_mutex_unlock(&kiln_fft_lock_);
}

// out[M, T] = log10(max(filters[M, F] power[T, F]^T, 1e-10))
extern "C" void kiln_logmel_cuda(float *out, const float *frames_power, const float *filters,
                                 int T, int n_freq, int n_mels, cudaStream_t stream) {
    if (T <= 0 || n_mels <= 0)
        return;
    kiln_cuda_ctx_t *ctx = kiln_cuda_ctx();
    const float one = 1.0f, zero = 0.0f;
    KILN_CUBLAS_CHECK(cublasSetStream(ctx->blas, stream));
    if (KILN_CUBLAS_CHECK(cublasGemmEx(ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, T, n_mels, n_freq,
                                       &one, frames_power, CUDA_R_32F, n_freq, filters,
                                       CUDA_R_32F, n_freq, &zero, out, CUDA_R_32F, T,
                                       CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT)))
        return;
    size_t n = (size_t)T * n_mels;
    kiln_log10_floor_kernel_<<<kiln_lm_grid_(n), 256, 0, stream>>>(out, n);
    KILN_CUDA_LAUNCH_CHECK();
}
