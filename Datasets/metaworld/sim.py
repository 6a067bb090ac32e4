"""Meta-World v3 env + offscreen renderer shared by generate.py and evaluate.py.

Both scripts reset, render and run the scripted expert through this module only, so an evaluation
episode starts from exactly the layout, and shows exactly the frames, that the generator would record
for the same episode seed.
"""
import atexit
import json
import os
import signal
import warnings
import zlib

os.environ.setdefault("MUJOCO_GL", "egl")  # headless; must be set before mujoco is imported

import numpy as np

import instruct_scene
from instruct_scene import TASK as INSTRUCT_TASK

ENV_MAX_STEPS = 500  # Meta-World's max_path_length; stepping past it raises
EVAL_SEED = 1_000_000  # evaluation episodes: episode_seed(EVAL_SEED, task, i); training data uses other seeds
# corner4 (default) frames the table ~2x tighter than corner; hand, objects and goals stay in view for all
# MT10 layouts (checked by projecting the recorded positions).
# workspace: a free camera (not in the model) that frames the table's working area from the front
# right, as the plain behaviour-cloning baseline does (Shared reference mt10-bc-baseline.md): pucks and
# goal sites take several pixels at 64x64 instead of the 1-2 they take from corner4.
# side: a free camera looking along -x from the table's +x side: the image's horizontal is the robot's y, its
# vertical the height. One oblique 64x64 view leaves the reach goal's depth ambiguous; with workspace it is not.
FREE_CAMERAS = {"workspace": {"lookat": (0.0, 0.68, 0.12), "distance": 1.05, "azimuth": 135.0, "elevation": -30.0},
                "side": {"lookat": (0.0, 0.7, 0.12), "distance": 0.9, "azimuth": 180.0, "elevation": -25.0}}
# Reach tasks succeed when tcp_center (the midpoint of the finger pads) is within 5 cm of the goal, but their
# scripted experts steer the hand (obs[0:3]), which is FINGERTIPS_BELOW_HAND above tcp_center (measured in the env:
# 0.0450 m in z, gripper open): their demos end at the edge of success, and the expert comes to rest with the
# fingertips up to 4.8 cm from the goal.
REACH_TASKS = ("reach-v3", "reach-wall-v3")
REACH_AIMS = ("hand", "fingertips")
FINGERTIPS_BELOW_HAND = 0.045
CAMERAS = ["corner4", "workspace", "side", "corner", "corner2", "corner3", "topview", "behindGripper", "gripperPOV"]

MT10 = ["reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3", "drawer-close-v3",
        "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "window-close-v3"]
INSTRUCTIONS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "instructions.json")
# One English instruction per task (MT10, all 50, and a generic one for INSTRUCT_TASK, whose demos have their own).
with open(INSTRUCTIONS_FILE) as _f:
    INSTRUCTIONS = json.load(_f)


def episode_seed(seed, task, attempt):
    """Seed of one attempt: independent of workers and chunking, so output depends only on --seed."""
    ss = np.random.SeedSequence(seed, spawn_key=(zlib.crc32(task.encode()), attempt))
    return int(ss.generate_state(1)[0])


def parse_tasks(spec):
    """A comma list of task names ('-v3' optional) and groups mt10, mt50/all (e.g. 'mt10,instruct-place')
    -> task names; ValueError names the bad ones."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    groups = {"mt10": MT10, "mt50": list(ALL_V3_ENVIRONMENTS), "all": list(ALL_V3_ENVIRONMENTS)}
    tasks = []
    for t in spec.replace(" ", "").split(","):
        tasks += groups.get(t.lower(), [t if t.endswith("-v3") else t + "-v3"] if t else [])
    tasks = list(dict.fromkeys(tasks))
    bad = [t for t in tasks if t not in ALL_V3_ENVIRONMENTS and t != INSTRUCT_TASK]
    if bad or not tasks:
        raise ValueError(f"unknown task(s) {bad}; valid: mt10, mt50, {INSTRUCT_TASK}, "
                         f"or any of {', '.join(ALL_V3_ENVIRONMENTS)}")
    return tasks


def camera_for(task, camera):
    """The camera a task is rendered from: the instruct scene always uses its own front camera."""
    return instruct_scene.CAMERA if task == INSTRUCT_TASK else camera


def check_extra_cameras(names, main):
    """Extra camera names (from CAMERAS, distinct, none equal to the main camera) as a list; else ValueError."""
    names = list(names)
    bad = [n for n in names if n not in CAMERAS]
    if bad:
        raise ValueError(f"unknown extra camera(s) {', '.join(map(repr, bad))}; valid: {', '.join(CAMERAS)}")
    if main in names:
        raise ValueError(f"extra camera {main!r} is the main camera")
    if len(set(names)) != len(names):
        raise ValueError(f"extra cameras listed twice: {', '.join(names)}")
    return names


def env_state_doc(task):
    return instruct_scene.ENV_STATE_DOC if task == INSTRUCT_TASK else "the full 39-d observation"


class SimEnv:
    """One task's env and (unless size is None) its offscreen renderer, for the main camera and any extra ones."""

    def __init__(self, task, size=None, camera="corner4", extra_cameras=()):
        import metaworld
        import mujoco
        self.mujoco = mujoco
        if task == INSTRUCT_TASK:
            self.env = instruct_scene.make_env()  # draws its layouts from env.np_random like the lines below
        else:
            bench = metaworld.MT1(task, seed=0)  # only for a valid Task (fully observable goal)
            self.env = bench.train_classes[task]()
            self.env.set_task(bench.train_tasks[0])
            self.env.seeded_rand_vec = True  # fresh layouts drawn from env.np_random instead of the 50 fixed ones
        # Meta-World's one start pose (--hand-jitter offsets it); None for the instruct scene, which draws its own.
        self.default_hand = None if task == INSTRUCT_TASK else np.array(self.env.hand_init_pos, dtype=np.float64)
        self.renderer = None
        self.camera = camera = camera_for(task, camera)
        self.extra_cameras = check_extra_cameras(extra_cameras, camera)
        self.flip = False
        if size is not None:
            self._make_renderer(size)

    def _make_renderer(self, size):
        m = self.env.model
        # llvmpipe spends most of its time on MSAA and 4096^2 shadow maps: 75-130 ms -> ~7 ms a frame.
        m.vis.quality.offsamples = 0
        m.vis.global_.offwidth = max(m.vis.global_.offwidth, size)
        m.vis.global_.offheight = max(m.vis.global_.offheight, size)
        self.renderer = self.mujoco.Renderer(m, size, size)
        self.env.reset()
        self.view, self.flip = self._view(self.camera)
        self.extra_views = {name: self._view(name) for name in self.extra_cameras}

    def _view(self, camera):
        """(what update_scene takes for this camera, whether its image is rotated by 180 degrees)."""
        if camera in FREE_CAMERAS:
            free = self.mujoco.MjvCamera()
            free.type = self.mujoco.mjtCamera.mjCAMERA_FREE
            spec = FREE_CAMERAS[camera]
            free.lookat[:] = spec["lookat"]
            free.distance, free.azimuth, free.elevation = spec["distance"], spec["azimuth"], spec["elevation"]
            return free, False
        # Meta-World's corner cameras have their up axis pointing down (images come out upside down):
        # rotate by 180 degrees whenever the camera's up vector points below the horizon.
        cam = self.env.model.camera(camera).id
        return camera, bool(self.env.data.cam_xmat[cam].reshape(3, 3)[2, 1] < 0)

    def reset(self, seed, hand_jitter=0.0):
        """Start the episode of this seed; returns (obs, layout dict). hand_jitter > 0 (MT tasks; the instruct scene
        draws its own start) moves the hand's start by an offset uniform in [-hand_jitter, hand_jitter]^3 m, drawn
        from the episode seed apart from env.np_random, so the layout (rand_vec) stays the seed's."""
        env = self.env
        if self.default_hand is not None:
            offset = np.random.default_rng([seed, 0x48414E44]).uniform(-hand_jitter, hand_jitter, 3) if hand_jitter > 0 else 0
            env.hand_init_pos = self.default_hand + offset
        # An unfrozen reset draws a layout in each of its two reset_model() calls, and some envs (window, door)
        # then return a first observation that mixes both. So draw the layout, freeze it, and reset again:
        # the episode starts exactly as an MT1 task (and an eval env given layout["rand_vec"]) would.
        env._freeze_rand_vec = False
        env.seed(seed)
        env.reset()
        env._freeze_rand_vec = True
        obs, _ = env.reset()
        # Reset can leave body/site poses a substep stale (seen as single pixels that depend on the previous
        # episode). Recompute poses only: mj_forward would also change the solver warm start, so the physics.
        for fn in (self.mujoco.mj_kinematics, self.mujoco.mj_comPos, self.mujoco.mj_camlight):
            fn(env.model, env.data)
        layout = {"rand_vec": env._last_rand_vec.tolist(), "hand_pos": obs[0:3].tolist(),
                  "obj_pos": obs[4:7].tolist(), "obj_quat": obs[7:11].tolist(),
                  "obj2_pos": obs[11:14].tolist(), "goal_pos": obs[36:39].tolist()}
        return obs, layout

    def episode_attrs(self):
        """Per-demo ground truth beyond the layout, as string attrs; call right after reset.
        The instruct scene: the episode's instruction and its scene (objects, targets, goal) as JSON."""
        if not hasattr(self.env, "scene_info"):
            return {}
        return {"language_instruction": self.env.instruction, "scene": json.dumps(self.env.scene_info(self.camera))}

    def render(self):
        """The current frame: uint8 (S,S,3), top row first, upright."""
        return self._draw(self.view, self.flip)

    def render_extra(self):
        """{extra camera: its frame of the current state, as render()} ({} without extra cameras)."""
        return {name: self._draw(view, flip) for name, (view, flip) in self.extra_views.items()}

    def _draw(self, view, flip):
        r = self.renderer
        r.update_scene(self.env.data, camera=view)
        r.scene.flags[self.mujoco.mjtRndFlag.mjRND_SHADOW] = False
        r.scene.flags[self.mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        img = r.render()
        return img[::-1, ::-1].copy() if flip else img.copy()

    def rollout(self, policy, obs, max_steps, after_success=0, perturb=None):
        """Render, act, step until after_success steps past the first info["success"], or max_steps.

        policy(obs, frame, extra) -> action, extra being render_extra() of the same state; actions are clipped
        to [-1, 1] and sent as float32. Yields (frame, extra, obs before the action, action, reward, success) per step.
        perturb(action) -> the action executed instead (clipped likewise); the yielded action is the policy's.
        """
        first_success = None
        for t in range(max_steps):
            frame, extra = self.render(), self.render_extra()
            state = obs.copy()  # some experts (door-open/close) edit the obs they are given in place
            action = np.clip(policy(obs, frame, extra), -1.0, 1.0).astype(np.float32)
            executed = action if perturb is None else np.clip(perturb(action), -1.0, 1.0).astype(np.float32)
            obs, reward, _, _, info = self.env.step(executed)
            success = bool(info["success"])
            yield frame, extra, state, action, reward, success
            if success and first_success is None:
                first_success = t
            if first_success is not None and t - first_success >= after_success:
                return

    def close(self):
        if self.renderer is not None:
            self.renderer.close()
        self.env.close()


def expert(task, reach_aim="hand"):
    """Meta-World's scripted expert for task as a rollout policy (it reads the full 39-d obs).

    reach_aim="fingertips" (REACH_TASKS only): the expert steers the fingertips to the goal instead of the hand."""
    from metaworld.policies import ENV_POLICY_MAP
    warnings.filterwarnings("ignore", message=r"Constant\(s\) may be too high")  # actions are clipped
    if reach_aim not in REACH_AIMS:
        raise ValueError(f"reach_aim must be one of {', '.join(REACH_AIMS)}, got {reach_aim!r}")
    policy = instruct_scene.InstructPlaceExpert() if task == INSTRUCT_TASK else ENV_POLICY_MAP[task]()
    if reach_aim == "fingertips" and task in REACH_TASKS:
        # the policy moves obs[0:3] (the hand) to obs[36:39]; a goal FINGERTIPS_BELOW_HAND higher brings the
        # fingertips to the real one (the copy leaves the caller's obs, which is recorded, as it was)
        raised = np.array([0.0, 0.0, FINGERTIPS_BELOW_HAND])
        return lambda obs, frame, extra: policy.get_action(np.concatenate([obs[:36], obs[36:39] + raised, obs[39:]]))
    return lambda obs, frame, extra: policy.get_action(obs)


_sim = None


def process_sim(task, size, camera, extra_cameras=()):
    """This worker process's SimEnv for (task, size, camera, extra_cameras); the previous one is closed."""
    global _sim
    key = (task, size, camera, tuple(extra_cameras))
    if _sim is None or _sim.key != key:
        first = _sim is None
        if not first:
            _sim.close()
        _sim = SimEnv(task, size, camera, extra_cameras)
        _sim.key = key
        if first:  # after the renderer exists, so that this runs before mujoco's own atexit eglTerminate
            atexit.register(_close_sim)
    return _sim


def _close_sim():  # else Renderer.__del__ prints EGL errors at interpreter teardown
    if _sim is not None:
        _sim.close()


def worker_init():
    """Pool initializer. Linux: die with the parent, so that a killed run leaves no workers behind."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop_pool(pool):
    """Terminate a ProcessPoolExecutor's running workers (after an error, Ctrl-C or SIGTERM).

    There is no public API for this before Python 3.14; shutdown() alone waits for the running tasks.
    """
    for proc in (getattr(pool, "_processes", None) or {}).values():
        proc.terminate()
