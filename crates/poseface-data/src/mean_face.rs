//! A 3D mean face for the iBUG 68 landmarks, built by hand for this crate from average
//! facial proportions (millimetres; inter-ocular distance 63 mm), so that no third-party
//! face-model file is needed. Its frontal projection matches the ArcFace 5-point template's
//! proportions (nose 0.57 and mouth 1.14 inter-ocular distances below the eyes, mouth width
//! 0.83 of it).
//!
//! Model frame: `x` to the image's right for a frontal face (the subject's left), `y` down,
//! `z` away from the camera; the eye corners lie near `z = 0` and the nose tip at `z = −34`.

/// The 68 points `[x, y, z]` in millimetres, iBUG order.
pub fn mean_face_68() -> [[f64; 3]; 68] {
    let mut p = [[0.0; 3]; 68];
    // Jaw 0..=16: an arc from beside the right ear (image left) round the chin to the left ear.
    for (i, q) in p.iter_mut().take(17).enumerate() {
        let phi = -std::f64::consts::FRAC_PI_2 + std::f64::consts::PI * i as f64 / 16.0;
        *q = [
            70.0 * phi.sin(),
            10.0 + 105.0 * phi.cos(),
            -5.0 + 80.0 * (1.0 - phi.cos()),
        ];
    }
    // One half of the face (image left: the subject's right); the other is its mirror.
    let right_brow = [
        [-55.0, -12.0, 8.0],
        [-45.0, -20.0, -2.0],
        [-33.0, -23.0, -8.0],
        [-21.0, -22.0, -11.0],
        [-10.0, -18.0, -12.0],
    ];
    p[17..22].copy_from_slice(&right_brow);
    for k in 0..5 {
        p[26 - k] = mirror(right_brow[k]);
    }
    p[27..31].copy_from_slice(&[
        [0.0, 0.0, -12.0],
        [0.0, 12.0, -20.0],
        [0.0, 24.0, -27.0],
        [0.0, 36.0, -34.0],
    ]);
    p[31..36].copy_from_slice(&[
        [-14.0, 42.0, -15.0],
        [-7.0, 44.0, -20.0],
        [0.0, 45.0, -22.0],
        [7.0, 44.0, -20.0],
        [14.0, 42.0, -15.0],
    ]);
    // Right eye (image left): outer corner, upper outer, upper inner, inner corner, lower inner, lower outer.
    let right_eye = [
        [-45.0, 1.0, 6.0],
        [-37.0, -4.0, -1.0],
        [-26.0, -4.0, -1.0],
        [-18.0, 1.0, 0.0],
        [-26.0, 4.0, -1.0],
        [-37.0, 4.0, -1.0],
    ];
    p[36..42].copy_from_slice(&right_eye);
    // Left eye: inner corner, upper inner, upper outer, outer corner, lower outer, lower inner.
    for (k, &src) in [3usize, 2, 1, 0, 5, 4].iter().enumerate() {
        p[42 + k] = mirror(right_eye[src]);
    }
    p[48..60].copy_from_slice(&[
        [-26.0, 72.0, -5.0],
        [-17.0, 67.0, -12.0],
        [-7.0, 64.0, -16.0],
        [0.0, 65.0, -17.0],
        [7.0, 64.0, -16.0],
        [17.0, 67.0, -12.0],
        [26.0, 72.0, -5.0],
        [17.0, 78.0, -12.0],
        [7.0, 81.0, -15.0],
        [0.0, 82.0, -16.0],
        [-7.0, 81.0, -15.0],
        [-17.0, 78.0, -12.0],
    ]);
    p[60..68].copy_from_slice(&[
        [-22.0, 72.0, -8.0],
        [-8.0, 70.0, -14.0],
        [0.0, 70.0, -15.0],
        [8.0, 70.0, -14.0],
        [22.0, 72.0, -8.0],
        [8.0, 74.0, -14.0],
        [0.0, 74.0, -15.0],
        [-8.0, 74.0, -14.0],
    ]);
    p
}

fn mirror(q: [f64; 3]) -> [f64; 3] {
    [-q[0], q[1], q[2]]
}

/// The 5 alignment points of the mean face: eye centres, nose tip, mouth corners.
pub fn mean_face_5() -> [[f64; 3]; 5] {
    let p = mean_face_68();
    let mean = |r: std::ops::Range<usize>| {
        let n = r.len() as f64;
        let s = p[r]
            .iter()
            .fold([0.0; 3], |a, q| [a[0] + q[0], a[1] + q[1], a[2] + q[2]]);
        [s[0] / n, s[1] / n, s[2] / n]
    };
    [mean(36..42), mean(42..48), p[30], p[48], p[54]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landmarks::FLIP_68;

    #[test]
    fn mean_face_is_mirror_symmetric() {
        let p = mean_face_68();
        for (i, &j) in FLIP_68.iter().enumerate() {
            let m = mirror(p[j]);
            for c in 0..3 {
                assert!((p[i][c] - m[c]).abs() < 1e-9, "point {i} vs mirrored {j}");
            }
        }
    }

    #[test]
    fn frontal_projection_matches_template_proportions() {
        let f = mean_face_5();
        let iod = f[1][0] - f[0][0];
        assert!((iod - 63.0).abs() < 1e-9);
        let eye_y = (f[0][1] + f[1][1]) / 2.0;
        // ArcFace template: nose 20.14 px and mouth 40.74 px below the eyes, IOD 35.24 px.
        assert!(((f[2][1] - eye_y) / iod - 20.14 / 35.24).abs() < 0.02);
        assert!(((f[3][1] - eye_y) / iod - 40.74 / 35.24).abs() < 0.03);
        assert!(((f[4][0] - f[3][0]) / iod - 29.18 / 35.24).abs() < 0.01);
    }
}
