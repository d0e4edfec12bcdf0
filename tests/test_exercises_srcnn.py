"""Notebook 04's exercise checkers."""

from course_utils.exercises import srcnn as ex


def test_exercise_checkers_accept_right_and_reject_wrong(capsys):
    from course_utils.metrics import sr_psnr

    def shuffle(x, r):
        b, c, h, w = x.shape
        return x.view(b, c // r**2, r, r, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c // r**2, h * r, w * r)

    def wrong_shuffle(x, r):
        b, c, h, w = x.shape
        return x.view(b, c // r**2, r, r, h, w).permute(0, 1, 4, 3, 5, 2).reshape(b, c // r**2, h * r, w * r)

    def todo(*args):
        raise NotImplementedError

    assert ex.check_pixel_shuffle(shuffle) is True
    assert ex.check_pixel_shuffle(wrong_shuffle) is False
    assert ex.check_pixel_shuffle(todo) is None
    assert ex.check_sr_psnr(sr_psnr) is True
    assert ex.check_sr_psnr(lambda a, b, s: sr_psnr(a, b, 1)) is False   # forgot the border
    assert ex.check_receptive_field(lambda ks: sum(k - 1 for k in ks) + 1) is True
    assert ex.check_receptive_field(lambda ks: sum(ks)) is False
    assert ex.check_receptive_field(todo) is None
    out = capsys.readouterr().out
    assert "not attempted yet" in out and "correct" in out
