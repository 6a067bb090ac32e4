"""Meta-World-Instruct: a Sawyer table scene with several everyday objects and places to put them.

The episode's goal (which object onto which plate or tray) is drawn at reset from the env's seeded RNG, so
the scene alone does not say what to do: only the instruction does. `make_env()` builds the env,
`InstructPlaceExpert` places the chosen object, `env.scene_info(camera)` gives the ground truth that the
generator stores per demo (attr `scene`) and annotate.py turns into VLA-IT annotations.

The 39-d observation keeps Meta-World's layout, with the goal object in the first object slot, the
distractor nearest to it (at reset) in the second, and the goal object's resting position on the goal
target as the goal. It therefore gives the answer away and is not a policy input.
"""
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gymnasium.spaces import Box
from metaworld.sawyer_xyz_env import SawyerXYZEnv
from scipy.spatial.transform import Rotation

TASK = "instruct-place-v3"
CAMERA = "front"  # defined in the generated XML; all objects and targets are in view at 64x64
ENV_STATE_DOC = ("the 39-d observation with the goal object (pos, quat) in the first object slot, the distractor "
                 "nearest to it in the second and the goal object's resting place on the goal target as the goal: "
                 "it gives the instruction's answer away, so it is not a policy input")
TABLE_Z = 0.0


@dataclass(frozen=True)
class Obj:
    """A graspable object. How language refers to it (category nouns, shapes, uses) is in phrasings.json."""
    name: str  # everyday identity, unique in the catalogue
    colour: str  # unique across objects and targets, so a colour word names one thing
    category: str  # what kind of thing it is (drink, fruit, ...), unique across objects
    geom: str  # MJCF geom attributes (type, size)
    rgba: str
    half_height: float  # centre height above the surface it rests on
    condim: int = 4
    friction: str = "1 0.1 0.002"


@dataclass(frozen=True)
class Target:
    """A static place to put an object on."""
    name: str  # plate or tray
    colour: str
    geom: str
    rgba: str
    top: float = 0.008  # height of its upper surface above the table


OBJECTS = (
    Obj("soda can", "blue", "drink", 'type="cylinder" size="0.021 0.03"', "0.1 0.25 0.9 1", 0.03),
    Obj("apple", "red", "fruit", 'type="sphere" size="0.024"', "0.85 0.1 0.1 1", 0.024,
        condim=6, friction="1 0.1 0.005"),  # rolling friction, so the apple stays where it is put
    Obj("sponge", "yellow", "cleaning", 'type="box" size="0.03 0.021 0.014"', "0.95 0.85 0.1 1", 0.014),
    Obj("screwdriver", "purple", "tool", 'type="box" size="0.045 0.011 0.011"', "0.55 0.2 0.75 1", 0.011),
    Obj("toy block", "orange", "toy", 'type="box" size="0.02 0.02 0.02"', "1 0.5 0.05 1", 0.02),
)
_PLATE, _TRAY = 'type="cylinder" size="0.065 0.004" pos="0 0 0.004"', 'type="box" size="0.065 0.065 0.004" pos="0 0 0.004"'
TARGETS = (
    Target("plate", "green", _PLATE, "0.2 0.7 0.25 1"),
    Target("plate", "white", _PLATE, "0.95 0.95 0.95 1"),
    Target("tray", "black", _TRAY, "0.12 0.12 0.12 1"),
)
N_OBJECTS = (3, 4)  # objects per scene, drawn uniformly
N_TARGETS = 2
OBJ_X, OBJ_Y = (-0.22, 0.22), (0.52, 0.8)
TGT_X, TGT_Y = (-0.2, 0.2), (0.55, 0.85)
MIN_OBJ_GAP, MIN_OBJ_TGT_GAP, MIN_TGT_GAP = 0.09, 0.11, 0.18
MAX_YAW = 0.3  # the gripper cannot yaw, so elongated objects must lie roughly across the fingers
SUCCESS_XY, SUCCESS_DZ = 0.05, 0.02
# The hand starts anywhere in this box, drawn per episode. From Meta-World's one fixed start pose, the arm's
# first motion in the image gives the goal away, and a policy learns to follow it instead of reading the
# instruction (vla probe: swapping the instruction moved its first chunk by 0.12, a third of the data's spread).
HAND_X, HAND_Y, HAND_Z = (-0.2, 0.2), (0.45, 0.75), (0.12, 0.28)
# rand_vec (the stored layout): per object [present, x, y, yaw], per target [present, x, y], the hand's start
# [x, y, z], then goal indices.
RAND_VEC_LEN = 4 * len(OBJECTS) + 3 * len(TARGETS) + 3 + 2


def display_name(entity):
    """'blue soda can', 'black tray': the colour plus the name, which is unique within a scene."""
    return f"{entity.colour} {entity.name}"


def atomic_instruction(obj, target):
    return f"put the {display_name(obj)} on the {display_name(target)}"


# ---------------------------------------------------------------------------------------------- XML

_MW = Path(__import__("metaworld").__file__).parent / "assets"
# The arm's actuators and mocap weld, as in sawyer_pick_place_v3.xml.
_ACTUATION = """
  <actuator>
    <position ctrllimited="true" ctrlrange="-1 1" joint="r_close" kp="400" user="1"/>
    <position ctrllimited="true" ctrlrange="-1 1" joint="l_close" kp="400" user="1"/>
  </actuator>
  <equality><weld body1="mocap" body2="hand" solref="0.02 1"/></equality>"""
# A front view facing the robot (free camera az=-90, el=-42, distance 0.82, lookat (0, 0.64, 0.06)).
_CAMERA = f'<camera name="{CAMERA}" mode="fixed" pos="0 1.249 0.609" xyaxes="-1 0 0 0 -0.669 0.743" fovy="45"/>'


def _object_xml(i, o):
    # Contact parameters of the pick-place puck. Explicit inertia: xyz_base sets inertiagrouprange="4 5".
    return (f'<body name="obj{i}" pos="{-1 + 0.1 * i} 1.5 0.05"><freejoint name="obj{i}_joint"/>'
            f'<inertial pos="0 0 0" mass="0.1" diaginertia="4e-5 4e-5 4e-5"/>'
            f'<geom name="obj{i}_geom" {o.geom} rgba="{o.rgba}" condim="{o.condim}" friction="{o.friction}" '
            f'solimp="0.99 0.99 0.01" solref="0.01 1" contype="1" conaffinity="1"/></body>')


def _target_xml(j, t):
    return (f'<body name="tgt{j}" pos="{-1 + 0.2 * j} 1.8 0"><geom name="tgt{j}_geom" {t.geom} rgba="{t.rgba}" '
            f'contype="1" conaffinity="1" friction="1 0.1 0.002"/></body>')


def scene_xml():
    """The scene's MJCF. Absolute includes and mesh/texture dirs, so it compiles from any directory."""
    bodies = "\n    ".join([_object_xml(i, o) for i, o in enumerate(OBJECTS)]
                           + [_target_xml(j, t) for j, t in enumerate(TARGETS)])
    return f"""<mujoco>
  <compiler meshdir="{_MW}/sawyer_xyz" texturedir="{_MW}/sawyer_xyz"/>
  <include file="{_MW}/scene/basic_scene.xml"/>
  <include file="{_MW}/objects/assets/xyz_base_dependencies.xml"/>
  <worldbody>
    <include file="{_MW}/objects/assets/xyz_base.xml"/>
    {_CAMERA}
    {bodies}
    <site name="goal" pos="0 0.6 0.02" size="0.01" rgba="0 0 0 0"/>
  </worldbody>{_ACTUATION}
</mujoco>
"""


def _xml_path():
    """MujocoEnv loads from a path: write the XML once per content, atomically (workers may race)."""
    text = scene_xml()
    path = Path(tempfile.gettempdir()) / f"sawyer_instruct_{hashlib.sha1(text.encode()).hexdigest()[:12]}.xml"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".xml")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    return str(path)


# ---------------------------------------------------------------------------------------------- env


@dataclass
class Layout:
    """One scene: present objects with (x, y, yaw), present targets with (x, y), the goal and the hand's start."""
    objects: dict = field(default_factory=dict)  # catalogue index -> (x, y, yaw)
    targets: dict = field(default_factory=dict)  # catalogue index -> (x, y)
    goal_object: int = 0
    goal_target: int = 0
    hand: tuple = (0.0, 0.6, 0.2)

    def to_vec(self):
        v = np.zeros(RAND_VEC_LEN)
        for i, (x, y, yaw) in self.objects.items():
            v[4 * i:4 * i + 4] = (1, x, y, yaw)
        base = 4 * len(OBJECTS)
        for j, (x, y) in self.targets.items():
            v[base + 3 * j:base + 3 * j + 3] = (1, x, y)
        v[-5:-2] = self.hand
        v[-2:] = (self.goal_object, self.goal_target)
        return v

    @classmethod
    def from_vec(cls, v):
        if len(v) != RAND_VEC_LEN:  # e.g. a layout stored before the hand's start was part of it (31 values)
            raise ValueError(f"an instruct-place rand_vec has {RAND_VEC_LEN} values, this one {len(v)}: "
                             "data from another generator version (regenerate it with generate.py)")
        base = 4 * len(OBJECTS)
        return cls({i: tuple(v[4 * i + 1:4 * i + 4]) for i in range(len(OBJECTS)) if v[4 * i] > 0.5},
                   {j: tuple(v[base + 3 * j + 1:base + 3 * j + 3]) for j in range(len(TARGETS)) if v[base + 3 * j] > 0.5},
                   int(round(v[-2])), int(round(v[-1])), tuple(float(x) for x in v[-5:-2]))


def _sample_points(rng, n, xs, ys, min_gap, avoid=(), avoid_gap=0.0, tries=10000):
    """n points in the box, pairwise >= min_gap apart and >= avoid_gap from each point in avoid."""
    for _ in range(tries):
        pts = []
        for _ in range(200):
            p = np.array([rng.uniform(*xs), rng.uniform(*ys)])
            if all(np.linalg.norm(p - q) >= min_gap for q in pts) and all(np.linalg.norm(p - q) >= avoid_gap for q in avoid):
                pts.append(p)
                if len(pts) == n:
                    return pts
    raise RuntimeError("could not place the scene's objects")


def sample_layout(rng):
    targets = sorted(rng.choice(len(TARGETS), N_TARGETS, replace=False).tolist())
    objects = sorted(rng.choice(len(OBJECTS), int(rng.choice(N_OBJECTS)), replace=False).tolist())
    tgt_xy = _sample_points(rng, len(targets), TGT_X, TGT_Y, MIN_TGT_GAP)
    obj_xy = _sample_points(rng, len(objects), OBJ_X, OBJ_Y, MIN_OBJ_GAP, tgt_xy, MIN_OBJ_TGT_GAP)
    return Layout({i: (*p, rng.uniform(-MAX_YAW, MAX_YAW)) for i, p in zip(objects, obj_xy)},
                  {j: tuple(p) for j, p in zip(targets, tgt_xy)},
                  int(rng.choice(objects)), int(rng.choice(targets)),
                  (rng.uniform(*HAND_X), rng.uniform(*HAND_Y), rng.uniform(*HAND_Z)))


class SawyerInstructPlaceEnv(SawyerXYZEnv):
    """Put the instructed object on the instructed target. Layout and goal come from `_last_rand_vec`,
    drawn from `np_random` on a reset with `_freeze_rand_vec` False (as Meta-World's seeded_rand_vec)."""

    def __init__(self, render_mode=None, camera_name=None, width=480, height=480):
        self._xml = _xml_path()  # read by model_name during super().__init__
        self.layout, self._distractor = Layout(), 0
        super().__init__(hand_low=(-0.5, 0.40, 0.05), hand_high=(0.5, 1, 0.5), render_mode=render_mode,
                         camera_name=camera_name, width=width, height=height)
        self.hand_init_pos = np.array(Layout().hand)
        self.init_tcp = self.tcp_center
        self.obj_init_pos = np.zeros(3)
        self._target_pos = np.zeros(3)
        self._random_reset_space = Box(np.zeros(RAND_VEC_LEN), np.ones(RAND_VEC_LEN), dtype=np.float64)
        # Goal (resting position on a target) must lie inside the observation space, which clips.
        self.goal_space = Box(np.array([-0.3, 0.45, 0.0]), np.array([0.3, 0.95, 0.1]), dtype=np.float64)
        self._partially_observable = False
        del self.sawyer_observation_space  # cached with the partially observable goal
        self.observation_space = self.sawyer_observation_space
        self._set_task_called = True  # no Meta-World Task: layouts come from rand_vec
        self._freeze_rand_vec = False
        self.seeded_rand_vec = True
        self._recolour_arm()

    @property
    def model_name(self):
        return self._xml

    def _recolour_arm(self):
        """Grey arm and fingers, hidden finger-tip sites: 'red', 'green', 'white' then name scene things only."""
        robot = self.model.body("base").id
        for g in range(self.model.ngeom):
            b = self.model.geom_bodyid[g]
            while b not in (0, robot):
                b = self.model.body_parentid[b]
            if b == robot and self.model.geom_rgba[g, 3] > 0:
                self.model.geom_rgba[g, :3] = (0.45, 0.45, 0.47)
        for s in ("rightEndEffector", "leftEndEffector"):
            self.model.site_rgba[self.model.site(s).id, 3] = 0

    # -- geometry of the current scene
    def _obj_qpos(self, i):
        return self.model.jnt_qposadr[self.model.joint(f"obj{i}_joint").id]

    def object_pos(self, i):
        return self.data.body(f"obj{i}").xpos.copy()

    def target_pos(self, j):
        return self.model.body(f"tgt{j}").pos.copy()

    def rest_pos(self, i, j):
        """Where object i's centre rests when it lies on target j."""
        x, y, _ = self.target_pos(j)
        return np.array([x, y, TARGETS[j].top + OBJECTS[i].half_height])

    # -- Meta-World hooks
    def _get_pos_objects(self):
        return np.hstack([self.object_pos(self.layout.goal_object), self.object_pos(self._distractor)])

    def _get_quat_objects(self):
        return np.hstack([Rotation.from_matrix(self.data.body(f"obj{i}").xmat.reshape(3, 3)).as_quat()
                          for i in (self.layout.goal_object, self._distractor)])

    def _get_id_main_object(self):
        return self.data.geom(f"obj{self.layout.goal_object}_geom").id

    def reset_model(self):
        if not self._freeze_rand_vec or self._last_rand_vec is None:
            self._last_rand_vec = sample_layout(self.np_random).to_vec()
        self.layout = Layout.from_vec(self._last_rand_vec)
        self.hand_init_pos = np.array(self.layout.hand)
        self._reset_hand()
        self._place(self.layout)
        self.obj_init_pos = self.object_pos(self.layout.goal_object)
        self._target_pos = self.rest_pos(self.layout.goal_object, self.layout.goal_target)
        self._set_pos_site("goal", self._target_pos)
        return self._get_obs()

    def _place(self, layout):
        """Absent things are parked off the table; present ones go where the layout says."""
        qpos, qvel = self.data.qpos.copy(), self.data.qvel.copy()
        for i, o in enumerate(OBJECTS):
            x, y, yaw = layout.objects.get(i, (-1 + 0.1 * i, 1.5, 0.0))
            a = self._obj_qpos(i)
            qpos[a:a + 3] = (x, y, TABLE_Z + o.half_height)
            qpos[a + 3:a + 7] = (np.cos(yaw / 2), 0, 0, np.sin(yaw / 2))
            qvel[self.model.jnt_dofadr[self.model.joint(f"obj{i}_joint").id]:][:6] = 0
        for j in range(len(TARGETS)):
            x, y = layout.targets.get(j, (-1 + 0.2 * j, 1.8))
            self.model.body(f"tgt{j}").pos = (x, y, TABLE_Z)
        self.set_state(qpos, qvel)
        goal = self.object_pos(layout.goal_object)
        others = [i for i in layout.objects if i != layout.goal_object]
        self._distractor = min(others, key=lambda i: np.linalg.norm(self.object_pos(i) - goal)) if others else layout.goal_object

    def evaluate_state(self, obs, action):
        i, j = self.layout.goal_object, self.layout.goal_target
        obj, rest = self.object_pos(i), self.rest_pos(i, j)
        in_place = np.linalg.norm(obj[:2] - rest[:2]) <= SUCCESS_XY and obj[2] <= rest[2] + SUCCESS_DZ
        grasped = self.touching_object(self._get_id_main_object())
        success = bool(in_place and not grasped)  # put down and let go, not held above the target
        tcp_to_obj = float(np.linalg.norm(self.tcp_center - obj))
        obj_to_target = float(np.linalg.norm(obj - rest))
        # Dense reward in [0, 10]: reach the object, then bring it to its resting place.
        reward = 10.0 if success else 2.0 * np.exp(-10 * tcp_to_obj) + 6.0 * np.exp(-10 * obj_to_target)
        return float(reward), {"success": float(success), "near_object": float(tcp_to_obj <= 0.03),
                               "grasp_success": float(grasped), "grasp_reward": 0.0, "in_place_reward": 0.0,
                               "obj_to_target": obj_to_target, "unscaled_reward": float(reward)}

    @property
    def instruction(self):
        return atomic_instruction(OBJECTS[self.layout.goal_object], TARGETS[self.layout.goal_target])

    def scene_info(self, camera=CAMERA):
        """Ground truth of the current scene (call right after reset): what is where, and the goal.
        image_xy: the centre projected into the camera's image, (0, 0) top left, (1, 1) bottom right."""
        project = _projector(self.model, self.data, camera)
        objects = [{"index": i, "name": OBJECTS[i].name, "colour": OBJECTS[i].colour, "category": OBJECTS[i].category,
                    "shape": OBJECTS[i].geom.split('"')[1],  # the geom type: cylinder, sphere or box
                    "display_name": display_name(OBJECTS[i]),
                    "pos": _round(self.object_pos(i)), "image_xy": _round(project(self.object_pos(i)))}
                   for i in sorted(self.layout.objects)]
        targets = [{"index": j, "name": TARGETS[j].name, "colour": TARGETS[j].colour,
                    "display_name": display_name(TARGETS[j]), "pos": _round(self.target_pos(j)),
                    "image_xy": _round(project(self.target_pos(j)))}
                   for j in sorted(self.layout.targets)]
        return {"task": TASK, "camera": camera, "objects": objects, "targets": targets,
                "goal_object": display_name(OBJECTS[self.layout.goal_object]),
                "goal_target": display_name(TARGETS[self.layout.goal_target]),
                "instruction": self.instruction, "hand_pos": _round(self.data.body("hand").xpos)}


def _round(v):
    return [round(float(x), 4) for x in v]


def _projector(model, data, camera):
    """World point -> normalised image coordinates of a fixed pinhole camera (as rendered, no flip)."""
    cam = model.camera(camera).id
    pos, rot = data.cam_xpos[cam].copy(), data.cam_xmat[cam].reshape(3, 3).copy()
    f = 0.5 / np.tan(np.deg2rad(model.cam_fovy[cam]) / 2)  # square images

    def project(p):
        x, y, z = rot.T @ (np.asarray(p) - pos)  # camera looks along -z, image y points up
        return np.array([0.5 + f * x / -z, 0.5 - f * y / -z])
    return project


def make_env():
    return SawyerInstructPlaceEnv()


# ---------------------------------------------------------------------------------------------- expert


class InstructPlaceExpert:
    """Scripted expert: grasp the goal object, lift, carry high, lower onto the target, let go, retreat.

    Stateless (a function of the observation, like Meta-World's policies), so one instance serves any number
    of episodes. It reads the hand and gripper, the goal object's position and its resting position
    obs[-3:] on the target, which holds the object's half height above the target surface.
    """
    GAIN = 25.0
    CARRY_Z = 0.17
    GRASP_DZ = 0.045  # hand above the object's centre when the fingers are around it (the pads' centre)
    CLOSED = 0.73  # gripper opening below which the fingers hold the object (as the pick-place policy)
    EMPTY = 0.15  # opening below which the fingers closed on nothing (the thinnest object keeps them ~0.25 apart)
    # Lower the object once it is this close above its place, and let go within RELEASE_XY (success allows
    # SUCCESS_XY = 5 cm): a policy that learns these demos need not be more precise than the task.
    DESCEND_XY, RELEASE_XY = 0.025, 0.035

    def get_action(self, obs):
        hand, opening, obj, rest = obs[0:3], obs[3], obs[4:7], obs[-3:]
        # Fingers closed on something: nearly shut and no longer closing (obs[21] is the previous opening).
        gripped = opening < self.CLOSED and opening - obs[21] > -0.002
        in_hand = np.linalg.norm(obj[:2] - hand[:2]) < 0.03 and abs(hand[2] - obj[2] - self.GRASP_DZ) < 0.03
        if np.linalg.norm(obj[:2] - rest[:2]) < self.RELEASE_XY and obj[2] < rest[2] + 0.012:
            return self._act(hand, hand + (0, 0, 0.1), -1.0)  # on the target: let go and retreat upwards
        if in_hand and gripped:
            return self._carry(hand, obj, rest)
        return self._grasp(hand, opening, obj, in_hand)

    def _grasp(self, hand, opening, obj, in_hand):
        above = obj + (-0.005, 0, self.GRASP_DZ + 0.08)
        if np.linalg.norm(hand[:2] - above[:2]) > 0.012 and not (in_hand and opening < self.CLOSED):
            # Rise before travelling, so that the fingers do not sweep through the other objects.
            z = max(hand[2], obj[2] + self.GRASP_DZ + 0.05)
            return self._act(hand, np.array([above[0], above[1], z]), -1.0)
        grasp = obj + (-0.005, 0, self.GRASP_DZ)
        if opening < self.EMPTY:  # missed: open, and come down again
            return self._act(hand, grasp + (0, 0, 0.03), -1.0)
        if hand[2] - grasp[2] > 0.01 and opening > self.CLOSED:
            return self._act(hand, grasp, -1.0)
        return self._act(hand, grasp, 1.0)  # close, and hold still until the fingers stop

    def _carry(self, hand, obj, rest):
        offset = hand - obj  # the object hangs from the fingers; aim the object, not the hand
        error = np.linalg.norm(obj[:2] - rest[:2])
        if error > 0.03:
            if hand[2] < self.CARRY_Z - 0.02:
                return self._act(hand, np.array([hand[0], hand[1], self.CARRY_Z]), 1.0)  # straight up first
            return self._act(hand, np.array([rest[0] + offset[0], rest[1] + offset[1], self.CARRY_Z]), 1.0)
        if error > self.DESCEND_XY:  # close: correct sideways at this height (going back up makes it oscillate)
            return self._act(hand, np.array([rest[0] + offset[0], rest[1] + offset[1], hand[2]]), 1.0)
        return self._act(hand, rest + offset, 1.0)

    def _act(self, hand, to, grab):
        return np.append(np.clip(self.GAIN * (np.asarray(to) - hand), -1, 1), grab).astype(np.float32)
