// SPDX-License-Identifier: GPL-2.0
/*
 * twinfs: fault injection for the undo-log tests.
 *
 * /sys/kernel/debug/twinfs/<dev>/fail accepts
 *   "<op>:<step> [skip [errno]]"  fail the (skip+1)-th hit of the point once
 *                                 (op may be "*"; errno defaults to EIO)
 *   "random <permille> [errno]"   fail every point with that probability
 *   "off"
 * and reads back the armed state.  "points" lists the step names, "stats"
 * the hits per step and the faults fired.
 */
#include <linux/debugfs.h>
#include <linux/random.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>
#include "op.h"
#include "fault.h"

#define TWINFS_FAULT_NAME(id, name) name,
static const char *const twinfs_fault_names[] = {
	TWINFS_FAULT_STEPS(TWINFS_FAULT_NAME)
};
#undef TWINFS_FAULT_NAME

struct twinfs_fault {
	spinlock_t lock;		/* everything below */
	char op[32];			/* operation name or "*" */
	int step;			/* armed step, -1: none */
	u32 skip;
	u32 permille;			/* random mode when non-zero */
	int err;
	u64 fired;
	u64 hits[TWINFS_FAULT_NR];
	struct dentry *dir;
};

static struct dentry *twinfs_debugfs_root;

int __twinfs_fault(struct super_block *sb, enum twinfs_fault_step step)
{
	struct twinfs_fault *f = TWINFS_SB(sb)->fault;
	struct twinfs_op *op = twinfs_cur_op(sb);
	bool fire = false;
	int err;

	if (!op)
		return 0;
	spin_lock(&f->lock);
	f->hits[step]++;
	if (f->permille) {
		fire = get_random_u32() % 1000 < f->permille;
	} else if (f->step == step &&
		   (!strcmp(f->op, "*") || !strcmp(f->op, op->name))) {
		if (f->skip) {
			f->skip--;
		} else {
			fire = true;
			f->step = -1;
		}
	}
	if (fire)
		f->fired++;
	err = f->err;
	spin_unlock(&f->lock);
	if (!fire)
		return 0;
	twinfs_info(sb, "injected fault %d at %s:%s", -err, op->name,
		    twinfs_fault_names[step]);
	return err;
}

static int twinfs_fault_step(const char *name)
{
	int i;

	for (i = 0; i < TWINFS_FAULT_NR; i++)
		if (!strcmp(name, twinfs_fault_names[i]))
			return i;
	return -1;
}

/* Parses one command; called with the text NUL-terminated, no newline. */
static int twinfs_fault_arm(struct twinfs_fault *f, char *cmd)
{
	char what[64], *colon;
	u32 a = 0, errnum = EIO;
	int n, step;

	n = sscanf(cmd, "%63s %u %u", what, &a, &errnum);
	if (n < 1 || !errnum || errnum >= MAX_ERRNO)
		return -EINVAL;
	if (!strcmp(what, "off")) {
		spin_lock(&f->lock);
		f->step = -1;
		f->permille = 0;
		spin_unlock(&f->lock);
		return 0;
	}
	if (!strcmp(what, "random")) {
		if (n < 2 || a > 1000)
			return -EINVAL;
		spin_lock(&f->lock);
		f->step = -1;
		f->permille = a;
		f->err = -(int)errnum;
		spin_unlock(&f->lock);
		return 0;
	}
	colon = strchr(what, ':');
	if (!colon || colon == what || colon - what >= sizeof(f->op))
		return -EINVAL;
	*colon = '\0';
	step = twinfs_fault_step(colon + 1);
	if (step < 0)
		return -EINVAL;
	spin_lock(&f->lock);
	strscpy(f->op, what, sizeof(f->op));
	f->step = step;
	f->skip = a;
	f->permille = 0;
	f->err = -(int)errnum;
	f->fired = 0;
	spin_unlock(&f->lock);
	return 0;
}

static ssize_t twinfs_fail_write(struct file *file, const char __user *buf,
				 size_t len, loff_t *ppos)
{
	struct twinfs_fault *f = file_inode(file)->i_private;
	char cmd[96];
	int err;

	if (len >= sizeof(cmd))
		return -EINVAL;
	if (copy_from_user(cmd, buf, len))
		return -EFAULT;
	cmd[len] = '\0';
	strim(cmd);
	err = twinfs_fault_arm(f, cmd);
	return err ? err : len;
}

static int twinfs_fail_show(struct seq_file *m, void *v)
{
	struct twinfs_fault *f = m->private;

	spin_lock(&f->lock);
	if (f->permille)
		seq_printf(m, "random %u %d\n", f->permille, -f->err);
	else if (f->step >= 0)
		seq_printf(m, "%s:%s %u %d\n", f->op,
			   twinfs_fault_names[f->step], f->skip, -f->err);
	else
		seq_puts(m, "off\n");
	seq_printf(m, "fired %llu\n", f->fired);
	spin_unlock(&f->lock);
	return 0;
}

static int twinfs_fail_open(struct inode *inode, struct file *file)
{
	return single_open(file, twinfs_fail_show, inode->i_private);
}

static const struct file_operations twinfs_fail_fops = {
	.owner		= THIS_MODULE,
	.open		= twinfs_fail_open,
	.read		= seq_read,
	.write		= twinfs_fail_write,
	.llseek		= seq_lseek,
	.release	= single_release,
};

static int twinfs_points_show(struct seq_file *m, void *v)
{
	struct twinfs_fault *f = m->private;
	int i;

	spin_lock(&f->lock);
	for (i = 0; i < TWINFS_FAULT_NR; i++)
		seq_printf(m, "%s %llu\n", twinfs_fault_names[i], f->hits[i]);
	spin_unlock(&f->lock);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(twinfs_points);

int twinfs_fault_init(struct super_block *sb)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	struct twinfs_fault *f;

	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f)
		return -ENOMEM;
	spin_lock_init(&f->lock);
	f->step = -1;
	f->err = -EIO;
	f->dir = debugfs_create_dir(sb->s_id, twinfs_debugfs_root);
	debugfs_create_file("fail", 0600, f->dir, f, &twinfs_fail_fops);
	debugfs_create_file("points", 0400, f->dir, f, &twinfs_points_fops);
	sbi->fault = f;
	twinfs_warn(sb, "fault injection enabled (test mounts only)");
	return 0;
}

void twinfs_fault_exit(struct super_block *sb)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);

	if (!sbi->fault)
		return;
	debugfs_remove(sbi->fault->dir);
	kfree(sbi->fault);
	sbi->fault = NULL;
}

void twinfs_fault_module_init(void)
{
	twinfs_debugfs_root = debugfs_create_dir("twinfs", NULL);
}

void twinfs_fault_module_exit(void)
{
	debugfs_remove(twinfs_debugfs_root);
}
