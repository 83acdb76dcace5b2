#!/usr/bin/python3
"""gen_samplers.py -- reference outputs of diffusion samplers for unigen's C samplers.

The samplers themselves are NOT part of this repository: this script imports them at run time
from extracted snapshots of the reference implementations, given on the command line:

    /usr/bin/python3 tests/ref/samplers/gen_samplers.py \
        --kdiff /tmp/kdiff --edm /tmp/edm --diffusers /tmp/diffusers \
        [--kdiff-commit SHA --edm-commit SHA --diffusers-commit SHA] [--out tests/ref/samplers]

  --kdiff      root of a crowsonkb/k-diffusion snapshot (contains k_diffusion/sampling.py)
  --edm        root of a NVlabs/edm snapshot (contains generate.py)
  --diffusers  root of a huggingface/diffusers snapshot (contains src/diffusers)

Needs Debian's python3 with torch and numpy, plus python3-scipy (k-diffusion's lms integrates
its coefficients with scipy.integrate.quad) and, for diffusers, python3-packaging,
python3-filelock, python3-regex, python3-tqdm, python3-importlib-metadata.
Optional imports the exercised code paths never touch are replaced by inert modules (see
install_stubs). Everything runs in float64.

What is written (see README.md beside this file): mix2d.json, mix16.json, noise2d.npy,
noise16.npy, one <case>.npy per case, ddim_alphas_cumprod.npy and manifest.json.
"""

import argparse
import importlib
import importlib.machinery
import importlib.util
import inspect
import json
import math
import os
import sys
import types

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

STEPS = (5, 10, 18)
SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 80.0, 7.0


# ----------------------------------------------------------------------------------------------
# Inert stand-ins for optional imports that the exercised code paths never use.

class _InertModule(types.ModuleType):
    """Any attribute is a callable that raises: proves the code path did not need it."""

    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)

        def _unavailable(*a, **k):
            raise RuntimeError(f'{self.__name__}.{name} is a stub: not available here')
        return _unavailable


class _HubStub(types.ModuleType):
    """huggingface_hub is only used by diffusers for hub downloads/uploads, never by the schedulers'
    arithmetic. Constants get inert values, decorators are identities, the rest are exception
    classes (diffusers catches some by name)."""

    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)
        if name == 'HF_HOME':
            return '/nonexistent/hf_home'
        if name.startswith('REGEX'):
            return r'^[0-9a-f]{40}$'
        if name.isupper():
            return None
        if name.startswith('validate'):
            return lambda f: f
        if name.startswith('is_'):
            return lambda *a, **k: False
        return type(name, (Exception,), {})


def _install(name, mod):
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
        return
    except Exception:
        pass
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
    if '.' not in name or name.split('.')[0] in ('torchvision', 'huggingface_hub'):
        mod.__path__ = []
    sys.modules[name] = mod
    parent, _, child = name.rpartition('.')
    if parent and parent in sys.modules:
        setattr(sys.modules[parent], child, mod)


def install_stubs():
    stubbed = []
    for name in ['torchdiffeq', 'torchsde', 'safetensors', 'torchvision', 'torchvision.transforms',
                 'torchvision.transforms.functional']:
        if importlib.util.find_spec(name.split('.')[0]) is None or name.split('.')[0] in stubbed:
            _install(name, _InertModule(name))
            stubbed.append(name)
    for name in ['huggingface_hub', 'huggingface_hub.constants', 'huggingface_hub.utils',
                 'huggingface_hub.file_download']:
        if importlib.util.find_spec('huggingface_hub') is None or name.split('.')[0] in stubbed:
            _install(name, _HubStub(name))
            stubbed.append(name)
    # diffusers' utils/torch_utils.py reads torch.xpu / torch.mps at import time (torch >= 2);
    # torch 1.13 has neither. The CPU float64 code path never calls them.
    for b in ('xpu', 'mps'):
        if not hasattr(torch, b):
            m = _InertModule('torch.' + b)
            m.is_available = lambda: False
            setattr(torch, b, m)
            stubbed.append('torch.' + b)
    return stubbed


# ----------------------------------------------------------------------------------------------
# Loading the reference code from the snapshots.

def load_kdiff(root):
    pkgdir = os.path.join(root, 'k_diffusion')
    if not os.path.isfile(os.path.join(pkgdir, 'sampling.py')):
        sys.exit(f'--kdiff {root}: no k_diffusion/sampling.py')
    # A bare package object, so that k_diffusion/__init__.py (which imports the training,
    # evaluation and model code with many heavy dependencies) is not executed.
    pkg = types.ModuleType('k_diffusion')
    pkg.__path__ = [pkgdir]
    pkg.__spec__ = importlib.machinery.ModuleSpec('k_diffusion', None, is_package=True)
    sys.modules['k_diffusion'] = pkg
    importlib.import_module('k_diffusion.utils')
    return importlib.import_module('k_diffusion.sampling')


def load_edm(root):
    if not os.path.isfile(os.path.join(root, 'generate.py')):
        sys.exit(f'--edm {root}: no generate.py')
    sys.path.insert(0, root)
    spec = importlib.util.spec_from_file_location('edm_generate', os.path.join(root, 'generate.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_diffusers(root):
    src = os.path.join(root, 'src')
    if not os.path.isdir(os.path.join(src, 'diffusers')):
        sys.exit(f'--diffusers {root}: no src/diffusers')
    sys.path.insert(0, src)
    ddim = importlib.import_module('diffusers.schedulers.scheduling_ddim')
    try:
        fm = importlib.import_module('diffusers.schedulers.scheduling_flow_match_euler_discrete')
        fm_cls = fm.FlowMatchEulerDiscreteScheduler
    except Exception as e:  # noqa: BLE001
        print(f'FlowMatchEulerDiscreteScheduler unavailable: {e!r}')
        fm_cls = None
    return ddim.DDIMScheduler, fm_cls


# ----------------------------------------------------------------------------------------------
# The mixtures and the exact denoiser (SPEC section 6).

def make_mixtures():
    k = np.arange(8)
    ang = 2 * np.pi * k / 8
    mix2d = {
        'weights': [0.05, 0.1, 0.15, 0.2, 0.05, 0.1, 0.15, 0.2],
        'means': [[float(2 * np.cos(a)), float(2 * np.sin(a))] for a in ang],
        'stds': [0.1, 0.15, 0.2, 0.25, 0.3, 0.1, 0.2, 0.3],
    }
    rng = np.random.default_rng(20240516)
    means16 = np.round(rng.standard_normal((3, 16)) * 1.5, 4)
    mix16 = {
        'weights': [0.5, 0.3, 0.2],
        'means': [[float(v) for v in row] for row in means16],
        'stds': [0.3, 0.5, 0.8],
    }
    return {'mix2d': mix2d, 'mix16': mix16}


class GMM:
    def __init__(self, mix):
        self.logw = torch.log(torch.tensor(mix['weights'], dtype=torch.float64))
        self.mu = torch.tensor(mix['means'], dtype=torch.float64)            # (K, d)
        self.s2 = torch.tensor(mix['stds'], dtype=torch.float64) ** 2         # (K,)
        self.d = self.mu.shape[1]

    perturb = 0.0          # relative perturbation of every output (roundoff-sensitivity pass only)
    rng = None

    def _p(self, D):
        if self.perturb:
            D = D * (1 + self.perturb * torch.from_numpy(self.rng.uniform(-1, 1, D.shape)))
        return D

    def denoise(self, x, sigma):
        """D(x; sigma) for x (n, d); sigma a python float, a 0-d tensor or an (n,) tensor."""
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        sig2 = (sigma.reshape(-1, 1) ** 2) if sigma.ndim > 0 else sigma ** 2   # (n,1) or ()
        var = self.s2[None, :] + sig2                                          # (n|1, K)
        diff = x[:, None, :] - self.mu[None, :, :]                             # (n, K, d)
        logp = (self.logw[None, :] - 0.5 * self.d * torch.log(2 * math.pi * var)
                - 0.5 * (diff ** 2).sum(-1) / var)
        r = torch.softmax(logp, dim=1)                                         # (n, K)
        post = self.mu[None] + (self.s2[None, :] / var)[..., None] * diff
        return self._p((r[..., None] * post).sum(1))

    def fm_denoise(self, x_t, t):
        """E[x0 | x_t] for x_t = (1-t) x0 + t eps, written in x_t so that t = 1 (sigma = inf) is
        well defined; for 0 < t < 1 it equals denoise(x_t/(1-t), t/(1-t))."""
        t = float(t)
        a = 1.0 - t
        var = a * a * self.s2 + t * t                                          # (K,)
        diff = x_t[:, None, :] - a * self.mu[None]
        logp = (self.logw[None, :] - 0.5 * self.d * torch.log(2 * math.pi * var)[None, :]
                - 0.5 * (diff ** 2).sum(-1) / var[None, :])
        r = torch.softmax(logp, dim=1)
        post = self.mu[None] + (a * self.s2 / var)[None, :, None] * diff
        return self._p((r[..., None] * post).sum(1))


class Counter:
    def __init__(self, fn):
        self.fn, self.n = fn, 0

    def __call__(self, *a, **k):
        self.n += 1
        return self.fn(*a, **k)


def tolist(a):
    return [float(v) for v in np.asarray(torch.as_tensor(a).detach().cpu().numpy(), dtype=np.float64).ravel()]


# ----------------------------------------------------------------------------------------------
# k-diffusion

def zero_noise_sampler(x):
    # Only passed to the eta=0 (deterministic) ancestral/SDE samplers: with eta=0, euler_ancestral
    # and dpmpp_2s_ancestral multiply it by sigma_up = 0, and dpmpp_2m_sde / dpmpp_3m_sde never call
    # it; passing one avoids constructing a torchsde.BrownianTree.
    return lambda sigma, sigma_next: torch.zeros_like(x)


KD_SAMPLERS = [
    # (case name, function, extra kwargs, notes)
    ('euler', 'sample_euler', {}, ''),
    ('heun', 'sample_heun', {}, 'last step (sigma_next == 0) is a plain Euler step: NFE = 2N-1'),
    ('dpm_2', 'sample_dpm_2', {}, 'midpoint sigma_mid = exp((ln s_i + ln s_{i+1})/2); last step (sigma_next == 0) is Euler: NFE = 2N-1'),
    ('lms', 'sample_lms', {'order': 4}, 'coefficients = integral over [s_i, s_{i+1}] of the Lagrange basis on the last min(i+1,4) sigmas (scipy quad); see lms_coeffs'),
    ('dpmpp_2m', 'sample_dpmpp_2m', {}, 'first step and last step (sigma_next == 0) are first order; last step returns exactly D'),
    ('euler_ancestral', 'sample_euler_ancestral', {'eta': 0.0}, 'eta=0: identical to euler'),
    ('dpmpp_2s_ancestral', 'sample_dpmpp_2s_ancestral', {'eta': 0.0}, 'eta=0: DPM-Solver++(2S) with r=1/2 in lambda=-ln sigma; last step (sigma_down == 0) is Euler: NFE = 2N-1'),
    ('dpmpp_2m_sde_midpoint', 'sample_dpmpp_2m_sde', {'eta': 0.0, 'solver_type': 'midpoint'}, 'eta=0; last step returns D; h_last is kept from every step'),
    ('dpmpp_2m_sde_heun', 'sample_dpmpp_2m_sde', {'eta': 0.0, 'solver_type': 'heun'}, 'eta=0; correction x += ((1 - e^{-h})/h - 1)... exactly: (expm1(-h).neg()/(-h) + 1) (1/r) (D - D_old); last step returns D'),
    ('dpmpp_3m_sde', 'sample_dpmpp_3m_sde', {'eta': 0.0}, 'eta=0; step 1 first order, step 2 second order, then third order; last step returns D'),
]


def run_kdiff(K, mixtures, noises, cases, out):
    grids = {
        'karras': lambda n: (K.get_sigmas_karras(n, SIGMA_MIN, SIGMA_MAX, rho=RHO),
                             {'sigma_min': SIGMA_MIN, 'sigma_max': SIGMA_MAX, 'rho': RHO}),
        'exponential': lambda n: (K.get_sigmas_exponential(n, SIGMA_MIN, SIGMA_MAX),
                                  {'sigma_min': SIGMA_MIN, 'sigma_max': SIGMA_MAX}),
        'vp': lambda n: (K.get_sigmas_vp(n), {'beta_d': 19.9, 'beta_min': 0.1, 'eps_s': 1e-3}),
    }
    plan = [(s, 'karras') for s in KD_SAMPLERS]
    plan += [(s, g) for g in ('exponential', 'vp') for s in KD_SAMPLERS if s[0] in ('euler', 'heun')]
    for (cname, fname, kw, notes), grid in plan:
        fn = getattr(K, fname)
        for n in STEPS:
            for mname, gmm in mixtures.items():
                sigmas, gargs = grids[grid](n)
                model = Counter(lambda x, sigma: gmm.denoise(x, sigma))
                x0 = torch.from_numpy(noises[mname]) * sigmas[0]
                kwargs = dict(kw)
                if 'eta' in kwargs:
                    kwargs['noise_sampler'] = zero_noise_sampler(x0)
                x = fn(model, x0, sigmas, disable=True, **kwargs)
                name = f'kd_{cname}_{grid}_n{n:02d}_{mname}'
                args = {'n': n, **gargs, **{k: v for k, v in kw.items()}}
                if 'eta' in kw:
                    args['noise_sampler'] = 'zeros (unused at eta=0)'
                extra = {}
                if cname == 'lms':
                    sc = sigmas.numpy()
                    extra['lms_coeffs'] = [[K.linear_multistep_coeff(min(i + 1, 4), sc, i, j)
                                            for j in range(min(i + 1, 4))] for i in range(len(sc) - 1)]
                save_case(out, cases, name, x, library='k-diffusion', function=f'k_diffusion.sampling.{fname}',
                          mixture=mname, steps=n, schedule=grid,
                          grid_function={'karras': 'get_sigmas_karras', 'exponential': 'get_sigmas_exponential',
                                         'vp': 'get_sigmas_vp'}[grid],
                          args=args, sigmas=tolist(sigmas), nfe=model.n, formulation='edm',
                          init='x = noise * sigmas[0]', notes=notes, **extra)


# ----------------------------------------------------------------------------------------------
# NVlabs/edm

class EDMNet:
    """Stands in for an EDM network (EDMPrecond): sigma_min = 0, sigma_max = inf, round_sigma is the
    identity (torch.as_tensor), net(x, sigma, class_labels) returns D(x; sigma) with sigma a 0-d tensor."""
    sigma_min = 0
    sigma_max = float('inf')

    def __init__(self, gmm):
        self.gmm = gmm
        self.n = 0
        self.frames = []

    def round_sigma(self, sigma):
        return torch.as_tensor(sigma)

    def __call__(self, x, sigma, class_labels=None):
        self.n += 1
        if len(self.frames) == 0:
            self.frames.append(dict(inspect.currentframe().f_back.f_locals))
        return self.gmm.denoise(x, sigma)


ABLATIONS = [
    # (case tag, formulation, kwargs)
    ('vp', 'vp-cont', {'discretization': 'vp', 'schedule': 'vp', 'scaling': 'vp'}),
    ('ve', 've', {'discretization': 've', 'schedule': 've', 'scaling': 'none'}),
    ('iddpm', 'edm', {'discretization': 'iddpm', 'schedule': 'linear', 'scaling': 'none'}),
]

ABLATION_DEFAULTS = {'sigma_min': None, 'sigma_max': None, 'rho': 7, 'epsilon_s': 1e-3, 'C_1': 0.001,
                     'C_2': 0.008, 'M': 1000, 'alpha': 1, 'S_churn': 0, 'S_min': 0, 'S_max': float('inf'),
                     'S_noise': 1}


def run_edm(E, mixtures, noises, cases, out):
    for n in STEPS:
        for mname, gmm in mixtures.items():
            net = EDMNet(gmm)
            lat = torch.from_numpy(noises[mname])
            x = E.edm_sampler(net, lat, None, randn_like=torch.zeros_like, num_steps=n)
            fr = net.frames[0]
            t_steps = fr['t_steps']
            save_case(out, cases, f'edm_edm_sampler_karras_n{n:02d}_{mname}', x, library='NVlabs/edm',
                      function='generate.edm_sampler', mixture=mname, steps=n, schedule='karras',
                      args={'num_steps': n, 'sigma_min': 0.002, 'sigma_max': 80, 'rho': 7, 'S_churn': 0,
                            'S_min': 0, 'S_max': 'inf', 'S_noise': 1, 'randn_like': 'zeros_like (unused: S_churn=0)',
                            'net.sigma_min': 0, 'net.sigma_max': 'inf', 'net.round_sigma': 'identity'},
                      sigmas=tolist(t_steps), t_steps=tolist(t_steps), nfe=net.n, formulation='edm',
                      init='x = noise * t_steps[0]',
                      notes='Heun (EDM Alg. 2 with S_churn=0); last step (i = N-1) is Euler: NFE = 2N-1')
    for tag, form, kw in ABLATIONS:
        for solver in ('euler', 'heun'):
            for n in STEPS:
                for mname, gmm in mixtures.items():
                    net = EDMNet(gmm)
                    lat = torch.from_numpy(noises[mname])
                    x = E.ablation_sampler(net, lat, None, randn_like=torch.zeros_like, num_steps=n,
                                           solver=solver, **kw)
                    fr = net.frames[0]
                    t_steps = fr['t_steps']
                    sig = fr['sigma'](t_steps)
                    s = fr['s']
                    s_vals = torch.stack([torch.as_tensor(s(t), dtype=torch.float64) for t in t_steps])
                    args = {'num_steps': n, 'solver': solver, **kw, **ABLATION_DEFAULTS,
                            'S_max': 'inf', 'randn_like': 'zeros_like (unused: S_churn=0)',
                            'net.sigma_min': 0, 'net.sigma_max': 'inf', 'net.round_sigma': 'identity',
                            'resolved_sigma_min': float(fr['sigma_min']), 'resolved_sigma_max': float(fr['sigma_max']),
                            'vp_beta_d': float(fr['vp_beta_d']), 'vp_beta_min': float(fr['vp_beta_min'])}
                    notes = {'vp': 'VP: t_i = 1 + i/(N-1) (eps_s - 1); sigma(t) = sqrt(e^{beta_d t^2/2 + beta_min t} - 1) with beta_d, beta_min RE-DERIVED from resolved sigma_min/max (vp_beta_d, vp_beta_min); t_steps = sigma_inv(sigma_steps); s(t) = 1/sqrt(1+sigma(t)^2); Euler/Heun in t; last step Euler to t = 0; output at t = 0 where s = 1',
                             've': 'VE: t = sigma^2, t_i = smax^2 (smin^2/smax^2)^{i/(N-1)}; sigma(t) = sqrt(t), s = 1; Euler/Heun in t; last step Euler to t = 0',
                             'iddpm': 'iDDPM grid: u_j (j = 0..M) from the cosine alpha_bar with C_1 clipping, filtered to [sigma_min, sigma_max] = [0.002, 81], indices round((len-1)/(N-1) i) (torch round: half to even); sigma(t) = t, s = 1'}[tag]
                    save_case(out, cases, f'edm_ablation_{tag}_{solver}_n{n:02d}_{mname}', x,
                              library='NVlabs/edm', function='generate.ablation_sampler', mixture=mname, steps=n,
                              schedule=f'edm-{tag}', args=args, sigmas=tolist(sig), t_steps=tolist(t_steps),
                              s_steps=tolist(s_vals), nfe=net.n, formulation=form,
                              init='x = noise * sigma(t_0) * s(t_0)',
                              notes=notes + ('; heun: last step (i = N-1) Euler, NFE = 2N-1' if solver == 'heun' else ''))


# ----------------------------------------------------------------------------------------------
# diffusers

DDIM_VARIANTS = [
    # (tag, kwargs beyond clip_sample=False)
    ('leading', {'timestep_spacing': 'leading', 'set_alpha_to_one': True}),
    ('leading_a1false', {'timestep_spacing': 'leading', 'set_alpha_to_one': False}),
    ('leading_off1_a1false', {'timestep_spacing': 'leading', 'set_alpha_to_one': False, 'steps_offset': 1}),
    ('trailing', {'timestep_spacing': 'trailing', 'set_alpha_to_one': True}),
    ('trailing_a1false', {'timestep_spacing': 'trailing', 'set_alpha_to_one': False}),
    ('linspace', {'timestep_spacing': 'linspace', 'set_alpha_to_one': True}),
    ('linspace_a1false', {'timestep_spacing': 'linspace', 'set_alpha_to_one': False}),
]


def run_ddim(DDIM, mixtures, noises, cases, out):
    alphas_saved = False
    for tag, kw in DDIM_VARIANTS:
        for n in STEPS:
            for mname, gmm in mixtures.items():
                sch = DDIM(clip_sample=False, **kw)
                if not alphas_saved:
                    np.save(os.path.join(out, 'ddim_alphas_cumprod.npy'),
                            sch.alphas_cumprod.to(torch.float64).numpy())
                    alphas_saved = True
                sch.set_timesteps(n)
                ac = sch.alphas_cumprod.to(torch.float64)
                calls = []

                def eps_model(x_t, t):
                    abar = ac[int(t)]
                    xs = x_t / abar.sqrt()
                    sig = ((1 - abar) / abar).sqrt()
                    calls.append(int(t))
                    return (xs - gmm.denoise(xs, sig)) / sig

                x = torch.from_numpy(noises[mname]) * sch.init_noise_sigma
                prev_ts = []
                for t in sch.timesteps:
                    inp = sch.scale_model_input(x, t)
                    eps = eps_model(inp, t)
                    prev_ts.append(int(t) - sch.config.num_train_timesteps // sch.num_inference_steps)
                    x = sch.step(eps, t, x, eta=0.0).prev_sample
                ts = [int(t) for t in sch.timesteps]
                final_ac = float(sch.final_alpha_cumprod)
                abar_t = [float(ac[t]) for t in ts]
                abar_prev = [float(ac[p]) if p >= 0 else final_ac for p in prev_ts]
                sig = lambda a: math.sqrt((1 - a) / a)
                cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sch.config.items() if not k.startswith('_')}
                save_case(out, cases, f'df_ddim_{tag}_n{n:02d}_{mname}', x, library='diffusers',
                          function='diffusers.DDIMScheduler.step', mixture=mname, steps=n,
                          schedule=f'ddim-{kw["timestep_spacing"]}',
                          args={'config': cfg, 'eta': 0.0, 'num_inference_steps': n,
                                'alphas_cumprod': 'float32 (torch.linspace float32 betas, float32 cumprod), saved as ddim_alphas_cumprod.npy'},
                          sigmas=[sig(a) for a in abar_t] + [sig(abar_prev[-1])],
                          sigmas_prev=[sig(a) for a in abar_prev],
                          timesteps=ts, prev_timesteps=prev_ts, alphas_cumprod_t=abar_t,
                          alphas_cumprod_prev=abar_prev, final_alpha_cumprod=final_ac,
                          nfe=len(calls), formulation='vp',
                          init='x_T = noise (init_noise_sigma = 1)',
                          notes='eps model: x~ = x_t/sqrt(abar_t), sigma_t = sqrt((1-abar_t)/abar_t), eps = (x~ - D(x~; sigma_t))/sigma_t. '
                                'Step goes to prev_t = t - T//N (NOT the next listed timestep for linspace/trailing when T % N != 0); '
                                'abar_prev = final_alpha_cumprod when prev_t < 0. Output is the raw last prev_sample '
                                '(x at abar = final_alpha_cumprod; not divided by sqrt(abar)).')


def run_fm(FM, mixtures, noises, cases, out):
    for shift in (1.0, 3.0):
        for n in STEPS:
            for mname, gmm in mixtures.items():
                sch = FM(shift=shift)
                sch.set_timesteps(n)
                sig32 = sch.sigmas.clone()
                nfe = 0
                x = torch.from_numpy(noises[mname]).clone()
                for i, t in enumerate(sch.timesteps):
                    tt = float(sig32[i])
                    D = gmm.fm_denoise(x, tt)
                    v = (x - D) / tt
                    nfe += 1
                    x = sch.step(v, t, x).prev_sample
                cfg = {k: v for k, v in sch.config.items() if not k.startswith('_')}
                save_case(out, cases, f'df_flowmatch_euler_shift{int(shift)}_n{n:02d}_{mname}', x,
                          library='diffusers', function='diffusers.FlowMatchEulerDiscreteScheduler.step',
                          mixture=mname, steps=n, schedule=f'fm-shift{shift:g}',
                          args={'config': cfg, 'num_inference_steps': n},
                          sigmas=tolist(sig32), timesteps=tolist(sch.timesteps), nfe=nfe, formulation='fm',
                          init='x = noise (t_0 = 1)',
                          notes='t grid = shift-mapped linspace(1, sigma_min_shifted, N) where sigma_min_shifted is already the shifted 1/1000 '
                                '(shift applied twice at the low end), then 0 appended; all in float32. velocity v = (x_t - D)/t with '
                                'D = E[x0 | x_t] (at t = 1: D = sum_k w_k mu_k); model sees t = sigmas[i] (float32 value). '
                                'step() casts the sample to float32 before x += (t_next - t) v (result float64).')


# ----------------------------------------------------------------------------------------------

def save_case(out, cases, name, x, **meta):
    x = x.detach().to(torch.float64).numpy()
    assert np.all(np.isfinite(x)), name
    fn = name + '.npy'
    np.save(os.path.join(out, fn), np.ascontiguousarray(x))
    noise = 'noise2d.npy' if meta['mixture'] == 'mix2d' else 'noise16.npy'
    case = {'name': name, 'library': meta.pop('library'), 'function': meta.pop('function'),
            'mixture': meta['mixture'] + '.json', 'noise': noise, 'steps': meta.pop('steps'),
            'schedule': meta.pop('schedule'), 'args': meta.pop('args'), 'sigmas': meta.pop('sigmas'),
            'nfe': meta.pop('nfe'), 'out': fn, 'formulation': meta.pop('formulation'), 'notes': meta.pop('notes')}
    meta.pop('mixture')
    case.update(meta)
    cases.append(case)


def np_gmm_denoise(mix, x, sigma):
    w = np.asarray(mix['weights'])
    mu = np.asarray(mix['means'])
    s2 = np.asarray(mix['stds']) ** 2
    d = mu.shape[1]
    var = s2 + sigma * sigma
    diff = x[:, None, :] - mu[None]
    logp = np.log(w) - 0.5 * d * np.log(2 * np.pi * var) - 0.5 * (diff ** 2).sum(-1) / var
    logp -= logp.max(1, keepdims=True)
    r = np.exp(logp)
    r /= r.sum(1, keepdims=True)
    return (r[..., None] * (mu[None] + (s2 / var)[None, :, None] * diff)).sum(1)


def self_check(mix_json, noises, out, cases):
    """Independent numpy k-diffusion Euler on Karras sigmas vs the library output."""
    worst = 0.0
    for c in cases:
        if not c['name'].startswith('kd_euler_karras_'):
            continue
        n = c['steps']
        mix = mix_json[c['mixture'][:-5]]
        ramp = np.linspace(0, 1, n)
        lo, hi = SIGMA_MIN ** (1 / RHO), SIGMA_MAX ** (1 / RHO)
        sig = np.append((hi + ramp * (lo - hi)) ** RHO, 0.0)
        assert np.max(np.abs(sig - np.asarray(c['sigmas']))) <= 1e-12 * SIGMA_MAX, c['name']
        x = noises[c['mixture'][:-5]] * sig[0]
        for i in range(n):
            d = (x - np_gmm_denoise(mix, x, sig[i])) / sig[i]
            x = x + (sig[i + 1] - sig[i]) * d
        ref = np.load(os.path.join(out, c['out']))
        err = np.max(np.abs(x - ref)) / max(1.0, np.max(np.abs(ref)))
        worst = max(worst, err)
        assert err <= 1e-12, (c['name'], err)
    print(f'self-check: numpy Euler/Karras matches k-diffusion sample_euler, max rel err {worst:.2e} (<= 1e-12)')


def float64_recompute_notes(mix_json, noises, out, cases):
    """How far the float32 parts of diffusers (DDIM's alphas_cumprod, FlowMatch's float32 sigmas and
    sample cast) move the result from an all-float64 computation of the same recurrence."""
    betas64 = np.linspace(1e-4, 0.02, 1000)
    ac64 = np.cumprod(1 - betas64)
    for c in cases:
        mix = mix_json[c['mixture'][:-5]]
        if c['library'] != 'diffusers':
            continue
        x = noises[c['mixture'][:-5]].copy()
        if c['formulation'] == 'vp':
            final = 1.0 if c['args']['config']['set_alpha_to_one'] else ac64[0]
            for t, p in zip(c['timesteps'], c['prev_timesteps']):
                a = ac64[t]
                ap = ac64[p] if p >= 0 else final
                xs = x / np.sqrt(a)
                s = np.sqrt((1 - a) / a)
                eps = (xs - np_gmm_denoise(mix, xs, s)) / s
                x0 = (x - np.sqrt(1 - a) * eps) / np.sqrt(a)
                x = np.sqrt(ap) * x0 + np.sqrt(1 - ap) * eps
        else:
            shift = c['args']['config']['shift']
            smin = shift * 1e-3 / (1 + (shift - 1) * 1e-3)
            ts = np.linspace(1.0, smin, c['steps'])
            ts = np.append(shift * ts / (1 + (shift - 1) * ts), 0.0)
            for i in range(c['steps']):
                t = ts[i]
                if t == 1.0:
                    D = np.tile(np.asarray(mix['weights']) @ np.asarray(mix['means']), (x.shape[0], 1))
                else:
                    D = np_gmm_denoise(mix, x / (1 - t), t / (1 - t))
                x = x + (ts[i + 1] - t) * (x - D) / t
        ref = np.load(os.path.join(out, c['out']))
        rel = np.linalg.norm(x - ref, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-300)
        c['float64_recompute_rel_err'] = {'median': float(np.median(rel)), 'p99': float(np.quantile(rel, 0.99)),
                                          'max': float(rel.max())}


def sanity_table(mix_json, out, cases):
    """Nearest-component standardized distance of the final samples, and for the Karras/EDM cases
    (same start x = noise*80) the error against a 400-step Heun solution of the same ODE."""
    print('\nsanity: mean over samples of min_k |x - mu_k| / s_k  (true samples: ~1.25 in 2-D, ~3.9 in 16-D)')
    print('        err = median |x - x_ref| / |x_ref| vs a 400-step Heun/Karras solve (karras-grid cases only)')
    rows = {}
    for c in cases:
        mix = mix_json[c['mixture'][:-5]]
        x = np.load(os.path.join(out, c['out']))
        mu = np.asarray(mix['means'])
        s = np.asarray(mix['stds'])
        dist = (np.linalg.norm(x[:, None, :] - mu[None], axis=2) / s[None]).min(1).mean()
        err = ''
        if c['schedule'] == 'karras':
            xr = c['_ref']
            err = float(np.median(np.linalg.norm(x - xr, axis=1) / np.linalg.norm(xr, axis=1)))
        key = c['name'][:c['name'].rfind('_n')]
        rows.setdefault((key, c['mixture'][:-5]), {})[c['steps']] = (dist, err)
    print(f'{"case":40s} {"mix":6s} ' + ' '.join(f'{"d@"+str(n):>7s} {"err@"+str(n):>9s}' for n in STEPS))
    for (k, m), v in rows.items():
        cells = []
        for n in STEPS:
            d, e = v[n]
            cells.append(f'{d:7.3f} {e:9.2e}' if e != '' else f'{d:7.3f} {"":>9s}')
        print(f'{k:40s} {m:6s} ' + ' '.join(cells))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--kdiff', required=True)
    ap.add_argument('--edm', required=True)
    ap.add_argument('--diffusers', required=True)
    ap.add_argument('--kdiff-commit', default='unknown')
    ap.add_argument('--edm-commit', default='unknown')
    ap.add_argument('--diffusers-commit', default='unknown')
    ap.add_argument('--out', default=os.path.dirname(os.path.abspath(__file__)))
    a = ap.parse_args()
    out = a.out
    os.makedirs(out, exist_ok=True)

    stubbed = install_stubs()
    K = load_kdiff(a.kdiff)
    E = load_edm(a.edm)
    DDIM, FM = load_diffusers(a.diffusers)
    torch.set_default_dtype(torch.float64)

    for f in os.listdir(out):
        if f.endswith('.npy'):
            os.remove(os.path.join(out, f))

    mix_json = make_mixtures()
    for m, mix in mix_json.items():
        with open(os.path.join(out, m + '.json'), 'w') as f:
            json.dump(mix, f, indent=1)
            f.write('\n')
    rng = np.random.default_rng(1234)
    noises = {'mix2d': rng.standard_normal((64, 2)), 'mix16': rng.standard_normal((32, 16))}
    np.save(os.path.join(out, 'noise2d.npy'), noises['mix2d'])
    np.save(os.path.join(out, 'noise16.npy'), noises['mix16'])
    mixtures = {m: GMM(v) for m, v in mix_json.items()}

    cases = []
    run_kdiff(K, mixtures, noises, cases, out)
    run_edm(E, mixtures, noises, cases, out)
    run_ddim(DDIM, mixtures, noises, cases, out)
    if FM is not None:
        run_fm(FM, mixtures, noises, cases, out)

    self_check(mix_json, noises, out, cases)

    # Roundoff sensitivity: rerun every case with each denoiser output perturbed by a relative
    # uniform(-1e-9, 1e-9) and record how much the final samples move (relative to 1e-9).
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        pert = {m: GMM(v) for m, v in mix_json.items()}
        for g in pert.values():
            g.perturb, g.rng = 1e-9, np.random.default_rng(7)
        pcases = []
        run_kdiff(K, pert, noises, pcases, tmp)
        run_edm(E, pert, noises, pcases, tmp)
        run_ddim(DDIM, pert, noises, pcases, tmp)
        if FM is not None:
            run_fm(FM, pert, noises, pcases, tmp)
        for c, pc in zip(cases, pcases):
            assert c['name'] == pc['name']
            xa = np.load(os.path.join(out, c['out']))
            xb = np.load(os.path.join(tmp, pc['out']))
            rel = np.linalg.norm(xa - xb, axis=1) / np.linalg.norm(xa, axis=1)
            c['roundoff_amplification'] = {'median': float(np.median(rel) / 1e-9),
                                           'p99': float(np.quantile(rel, 0.99) / 1e-9)}
    float64_recompute_notes(mix_json, noises, out, cases)

    refs = {}
    for m, gmm in mixtures.items():
        sig = K.get_sigmas_karras(400, SIGMA_MIN, SIGMA_MAX, rho=RHO)
        refs[m] = K.sample_heun(lambda x, s: gmm.denoise(x, s), torch.from_numpy(noises[m]) * sig[0], sig,
                                disable=True).numpy()
    for c in cases:
        if c['schedule'] == 'karras':
            c['_ref'] = refs[c['mixture'][:-5]]
    sanity_table(mix_json, out, cases)
    for c in cases:
        c.pop('_ref', None)

    manifest = {
        'generator': 'tests/ref/samplers/gen_samplers.py',
        'sources': {'crowsonkb/k-diffusion': a.kdiff_commit, 'NVlabs/edm': a.edm_commit,
                    'huggingface/diffusers': a.diffusers_commit},
        'torch': torch.__version__, 'numpy': np.__version__,
        'stubbed_modules': stubbed,
        'dtype': 'float64 throughout except where a case notes float32 (diffusers)',
        'cases': cases,
    }
    with open(os.path.join(out, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=1, allow_nan=False)
        f.write('\n')
    print(f'\n{len(cases)} cases written to {out}')


if __name__ == '__main__':
    main()
